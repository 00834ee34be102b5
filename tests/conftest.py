"""Shared fixtures: an isolated data dir per test, the real Docker engine, the CLI as a subprocess, and the
test hosts that tests of several layers use: `ssh_env` (real sshd hosts on loopback, sshd_hosts.py) and
`remote_env` (a "remote GPU host" with its own Docker engine, remote_hosts.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import GPU_FIXTURES, Result, require
from remote_hosts import (DOCKERD, State, acquire_lock, build, clean_up_after_crashed_session, release_lock,
                          tear_down)
from sshd_hosts import FIXTURES, SSHD, Host, keygen, make_fakegpu, make_host


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


@dataclass
class SSHEnv:
    user_key: Path
    other_key: Path
    gpu: Host
    cpu: Host


@pytest.fixture(scope="session")
def ssh_env(tmp_path_factory):
    """Real sshd instances on loopback for the machine tests: a GPU host (a fake nvidia-smi on its PATH that
    replays the H100 captures) and a CPU host without one."""
    require(os.path.exists(SSHD), "openssh-server (sshd) is not installed")
    require(FIXTURES.is_dir(), f"GPU fixtures not found at {FIXTURES}")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("ssh")
    user_key, other_key = root / "userkey", root / "otherkey"
    keygen(user_key)
    keygen(other_key)
    authorized = root / "authorized_keys"
    authorized.write_text((root / "userkey.pub").read_text())
    fakegpu = make_fakegpu(root)
    env = SSHEnv(user_key, other_key, make_host(root, "gpu", "127.0.0.1", authorized, str(fakegpu)),
                 make_host(root, "cpu", "127.0.0.2", authorized, None))
    env.gpu.start()
    env.cpu.start()
    yield env
    env.gpu.stop()
    env.cpu.stop()


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
    only through sshd hosts whose sessions point DOCKER_HOST at it; see remote_hosts.py). Needs root, ip,
    iptables, dockerd, sshd and the main engine's busybox:latest: missing ones skip locally and fail under
    CI=true."""
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


@pytest.fixture(autouse=True)
def _stop_followers_of_this_test(request):
    """A remote run's detached follower keeps retrying while its host is away (by design: the run lives on),
    and a dispatcher waits as long as runs are queued;
    once a test is over and its host torn down, its followers are stopped, by pid.
    Only for the tests that use `remote_env`, wherever they live (tests/services/remote, the Slurm backend's)."""
    if "remote_env" not in request.fixturenames:
        yield
        return
    home = request.getfixturevalue("home")
    yield
    import signal

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"_follow" in argv or b"_dispatch" in argv) and f"WORKBENCH_HOME={home}".encode() in environ:
            try:
                os.kill(int(entry.name), signal.SIGTERM)
            except ProcessLookupError:
                pass
