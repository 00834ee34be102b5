"""Connecting to the Docker engine that DOCKER_HOST or the current docker context names."""

from __future__ import annotations

import os
from typing import Any

from workbench.errors import EngineUnavailable

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


def engine_address() -> str:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
        if context is not None and context.Host:
            return context.Host
    except Exception:  # a broken ~/.docker/config.json must not stop us from trying the default
        pass
    return DEFAULT_SOCKET


def connect(timeout: float = 60.0) -> Any:
    """A docker.DockerClient that answered a ping, or EngineUnavailable with the reason."""
    import docker
    import docker.errors

    address = engine_address()
    try:
        if os.environ.get("DOCKER_HOST"):
            client = docker.from_env(timeout=timeout)
        else:
            client = docker.DockerClient(base_url=address, timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "FileNotFoundError" in reason or "No such file" in reason or "Connection refused" in reason:
            reason = "no engine is listening there"
        raise EngineUnavailable(
            f"no Docker engine at {address}: {reason[:200]}",
            hint="start dockerd (or set DOCKER_HOST), or use --executor process",
        ) from None
    return client
