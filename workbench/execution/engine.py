"""Connecting to the Docker engine that DOCKER_HOST or the current docker context names."""

from __future__ import annotations

import json
import os
from typing import Any

from workbench.errors import EngineUnavailable

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
PING_TIMEOUT = 5.0
API_TIMEOUT = 60.0


def engine_address() -> str:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if not _named_context():
        return DEFAULT_SOCKET  # the common case, answered without importing docker-py
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
        if context is not None and context.Host:
            return context.Host
    except Exception:  # a broken ~/.docker/config.json must not stop us from trying the default
        pass
    return DEFAULT_SOCKET


def _named_context() -> str | None:
    """The docker CLI's current context when it is not the default one (DOCKER_CONTEXT or config.json)."""
    name = os.environ.get("DOCKER_CONTEXT")
    if not name:
        config = os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"), "config.json")
        try:
            with open(config, encoding="utf-8") as fh:
                name = json.load(fh).get("currentContext")
        except (OSError, ValueError, AttributeError):
            return None
    return None if name in (None, "", "default") else name


def import_docker(address: str) -> Any:
    """Imports docker-py without its optional ssh:// transport unless the engine is reached over ssh://:
    that module imports paramiko (and cryptography), ~0.25 s, a third of a short run's launch overhead.
    Only docker's own `docker.transport.sshconn` is held back (docker-py treats it as optional), never
    `paramiko` itself, so another thread importing paramiko meanwhile is unaffected."""
    import sys

    if "docker" in sys.modules or address.startswith("ssh://"):
        import docker
        return docker
    blocked = "docker.transport.sshconn"
    sys.modules[blocked] = None  # type: ignore[assignment]
    try:
        import docker
    finally:
        if sys.modules.get(blocked, 0) is None:
            del sys.modules[blocked]
    return docker


def ping_timeout() -> float:
    """Seconds an engine has to answer its first ping: a frozen engine is reported in seconds, not minutes."""
    try:
        return max(0.1, float(os.environ.get("WORKBENCH_ENGINE_TIMEOUT", PING_TIMEOUT)))
    except ValueError:
        return PING_TIMEOUT


def connect(timeout: float = API_TIMEOUT) -> Any:
    """A docker.DockerClient that answered a ping, or EngineUnavailable with the reason."""
    address = engine_address()
    docker = import_docker(address)
    import docker.errors

    first = ping_timeout()
    try:
        if os.environ.get("DOCKER_HOST"):
            client = docker.from_env(timeout=first)
        else:
            client = docker.DockerClient(base_url=address, timeout=first)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "FileNotFoundError" in reason or "No such file" in reason or "Connection refused" in reason:
            reason = "no engine is listening there"
        elif "timed out" in reason.lower():
            raise EngineUnavailable(f"the Docker engine at {address} does not answer (no reply within {first:g} s)",
                                    hint="it may be frozen or overloaded: check dockerd, or use --executor process"
                                    ) from None
        raise EngineUnavailable(
            f"no Docker engine at {address}: {reason[:200]}",
            hint="start dockerd (or set DOCKER_HOST), or use --executor process",
        ) from None
    client.api.timeout = timeout  # later calls (a create with a large spec, a build step) may take longer
    return client

