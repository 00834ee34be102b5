"""`remote_env`: a real "remote GPU host" on this machine (a second Docker engine with a stand-in NVIDIA hook,
reached only through sshd hosts whose sessions point DOCKER_HOST at it; see remote_hosts.py). Needs root,
ip, iptables, dockerd, sshd and the main engine's busybox:latest: missing ones skip locally and fail under
CI=true."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import GPU_FIXTURES, require
from remote_hosts import (DOCKERD, SSHD, State, acquire_lock, build, clean_up_after_crashed_session,
                          release_lock, tear_down)


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
def _stop_followers_of_this_test(home):
    """A remote run's detached follower keeps retrying while its host is away (by design: the run lives on),
    and a dispatcher waits as long as runs are queued;
    once a test is over and its host torn down, its followers are stopped, by pid."""
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
