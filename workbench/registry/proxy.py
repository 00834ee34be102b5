"""The reverse proxy in front of a deployment: a Caddy container (`caddy:2`) on the host, publishing the
deployment's stable port, its one route sent to the live version's container on the deployments network.
A switch writes the new config into the container and has Caddy load it (`caddy reload`, its admin API on
localhost inside the container): a graceful reload that keeps the listener, finishes requests in flight on
the old upstream and retries a refused connection for a few seconds, so no request is dropped."""

from __future__ import annotations

import io
import json
import tarfile
import time
from typing import Any

from workbench.errors import WorkbenchError

IMAGE = "caddy:2"
CONFIG_DIR = "/etc/workbench"
CONFIG = f"{CONFIG_DIR}/proxy.json"
NEXT = "proxy.next.json"  # a new config is loaded from here, and becomes proxy.json only once Caddy took it
LISTEN = 80  # inside the proxy container; published on the host as the deployment's port


def config(upstream: str, container: str) -> dict[str, Any]:
    """Caddy's JSON config: one route to `upstream` (the serving container's address and port — by address:
    an engine started without iptables has no embedded DNS), named by the container it reaches (`@id`)."""
    return {
        "admin": {"listen": "localhost:2019"},
        "apps": {"http": {"grace_period": "30s", "servers": {"deployment": {
            "listen": [f":{LISTEN}"],
            "automatic_https": {"disable": True},
            "routes": [{"@id": container, "handle": [{
                "handler": "reverse_proxy",
                "upstreams": [{"dial": upstream}],
                # a connection the upstream refuses (a restart, a switch under way) is tried again, not failed
                "load_balancing": {"try_duration": "10s", "try_interval": "250ms"},
            }]}],
        }}}},
    }


def serving_of(document: dict[str, Any]) -> tuple[str, str] | None:
    """(container, upstream) of a config."""
    try:
        route = document["apps"]["http"]["servers"]["deployment"]["routes"][0]
        return route["@id"], route["handle"][0]["upstreams"][0]["dial"]
    except (KeyError, IndexError, TypeError):
        return None


def _tar(folder: str, name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directory = tarfile.TarInfo(folder)
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(directory)
        info = tarfile.TarInfo(f"{folder}/{name}")
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_config(container: Any, upstream: str, serving: str, filename: str = "proxy.json") -> None:
    """Puts the config for `upstream` (the container `serving`) into the created or running proxy."""
    data = json.dumps(config(upstream, serving), indent=1).encode()
    parent, folder = CONFIG_DIR.rsplit("/", 1)
    if not container.put_archive(parent or "/", _tar(folder, filename, data)):
        raise WorkbenchError(f"could not write the proxy's config into {container.name}")


def read_serving(container: Any | None) -> tuple[str, str] | None:
    """(container, upstream) the proxy's config names: what it serves, as far as the host knows (None
    without a proxy or a config)."""
    import docker.errors

    if container is None:
        return None
    try:
        stream, _ = container.get_archive(CONFIG)
    except docker.errors.NotFound:  # created, never configured
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("proxy.json")
        return serving_of(json.loads(member.read())) if member else None


def reload(container: Any, upstream: str, serving: str) -> None:
    """Switches the running proxy to `upstream` (graceful: see the module's doc). proxy.json, which
    `read_serving` trusts, is replaced only once Caddy took the new config: a refused reload leaves it
    naming what Caddy still serves."""
    write_config(container, upstream, serving, NEXT)
    code, output = container.exec_run(["caddy", "reload", "--config", f"{CONFIG_DIR}/{NEXT}"])
    if code != 0:
        lines = (output or b"").decode(errors="replace").strip().splitlines()
        raise WorkbenchError(f"the proxy {container.name} did not take the new upstream: "
                             f"{lines[-1] if lines else f'caddy reload exited {code}'}")
    write_config(container, upstream, serving)
