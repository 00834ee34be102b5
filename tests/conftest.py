"""Shared fixtures: an isolated data dir per test, the real Docker engine, the remote host env (the SSH test
host, which is also the Slurm test cluster's login node), and the CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).with_name("remote")))  # remote_hosts, for remote_env (appended: shadows nothing)

from helpers import GPU_FIXTURES, Result, require  # noqa: E402
from remote_hosts import (DOCKERD, SSHD, State, acquire_lock, build, clean_up_after_crashed_session,  # noqa: E402
                          release_lock, tear_down)


def pytest_collection_modifyitems(items):
    """Every test that uses the Docker engine carries the `docker` marker (`-m "not docker"` without one)."""
    for item in items:
        if "docker_client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        require(False, f"no Docker engine ({exc})")
    for image in ("busybox:latest", "python:3.11-slim"):
        try:
            client.images.get(image)
        except Exception:  # noqa: BLE001
            require(False, f"image {image} is missing")
    return client


def _main_engine_has_busybox() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.images.get("busybox:latest")
        client.close()
        return None
    except Exception as exc:  # noqa: BLE001
        return str(exc)


@pytest.fixture(scope="session")
def remote_env():
    """A real "remote GPU host" on this machine (a second Docker engine with a stand-in NVIDIA hook, reached
    only through sshd hosts whose sessions point DOCKER_HOST at it; see remote/remote_hosts.py); its `gpu`
    host (127.0.0.3) is also the Slurm test cluster's login node. Needs root, ip, iptables, dockerd, sshd and
    the main engine's busybox:latest: missing ones skip locally and fail under CI=true."""
    require(os.geteuid() == 0, "the remote host env needs root (bridge, iptables, network namespaces)")
    for tool in ("ip", "iptables", "docker", "ssh", "ssh-keygen"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    require(os.path.exists(DOCKERD), "dockerd (docker.io) is not installed")
    require(os.path.exists(SSHD), "openssh-server (sshd) is not installed")
    require(GPU_FIXTURES.is_dir(), f"GPU fixtures not found at {GPU_FIXTURES}")
    problem = _main_engine_has_busybox()
    require(problem is None, f"the main Docker engine or its busybox:latest is missing ({problem})")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    lock = acquire_lock()
    state, env = State(), None
    try:
        clean_up_after_crashed_session()
        try:
            env = build(state)
        except Exception as exc:  # noqa: BLE001
            require(False, f"cannot build the remote host env: {exc}")
        yield env
    finally:
        try:
            tear_down(env, state)
        finally:
            release_lock(lock)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "wbhome"
    path.mkdir()
    monkeypatch.setenv("WORKBENCH_HOME", str(path))
    return path


@pytest.fixture
def cli(home):
    def run(*args: str, timeout: float = 240, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
        full_env = {**os.environ, "WORKBENCH_HOME": str(home), **(env or {})}
        full_env.pop("WORKBENCH_DEBUG", None)
        done = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                              timeout=timeout, env=full_env, cwd=cwd)
        return Result(done.returncode, done.stdout, done.stderr)
    return run


@pytest.fixture
def make_project(tmp_path):
    """Writes a project folder from a spec text and files; returns its path."""
    counter = {"n": 0}

    def make(spec: str, files: dict[str, str] | None = None, name: str | None = None) -> Path:
        counter["n"] += 1
        root = tmp_path / (name or f"proj{counter['n']}")
        root.mkdir()
        (root / "workbench.toml").write_text(spec)
        for rel, text in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root
    return make
