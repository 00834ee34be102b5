"""The reverse proxy in front of a deployment: a Caddy container (`caddy:2`, Debian's caddy 2.6.2 in the
stand-in) publishing the deployment's port, and what it serves, a `Plan` (the versions and their shares).

Its config has one server per version, `v<N>`, on 127.0.0.1 inside the container (`version_port`): it
sends to that version's model container and asks its health path itself (Caddy's active health checks,
every 0.5 s), so a dead container is out of rotation within a second and callers get a fast 503. The
server `front` (the published port) sends each request to the version servers by round robin over one
entry per weight unit (caddy 2.6 has no weighted policy: 90/10 is 9 entries of one and 1 of the other,
an exact split), after refusing a request without the bearer token when the plan has one. `front` and
every `v<N>` count their requests (`"metrics": {}`), so the counters say which version served; the
server `metrics` (not counted itself, never published) answers them on METRICS_PORT.

The config names everything the plan holds (each version server's route carries the serving container's
name as its `@id`; Caddy refuses unknown keys), so `plan_of` reads the plan back from the file. A change
is loaded by `caddy reload` (a graceful reload: the listeners stay, requests in flight finish), and the
file a restarted proxy reads is replaced only after Caddy took the new one."""

from __future__ import annotations

import io
import json
import math
import tarfile
import time
from dataclasses import dataclass
from functools import reduce
from typing import Any

from workbench.errors import WorkbenchError

IMAGE = "caddy:2"
CONFIG_DIR = "/etc/workbench"
CONFIG = f"{CONFIG_DIR}/proxy.json"
NEXT = "proxy.next.json"  # a new config is loaded from here, and becomes proxy.json only once Caddy took it
LISTEN = 80  # inside the proxy container; published on the host as the deployment's port
METRICS_PORT = 9180
FRONT, METRICS = "front", "metrics"
# A version server sends to one container on the deployment network: connecting takes well under a
# millisecond, so a short dial timeout and retry window (a container restarting) still lose nothing, and a
# dead one gives a 503 in about a second instead of Caddy's default hang.
DIAL_TIMEOUT, TRY_DURATION, TRY_INTERVAL = "1s", "1s", "100ms"
HEALTH_INTERVAL, HEALTH_TIMEOUT = "500ms", "1s"
UNAUTHORIZED = "a bearer token is required (Authorization: Bearer <token>)\n"


@dataclass(frozen=True)
class Backend:
    """One version the proxy sends to."""
    version: int
    container: str  # the serving container's name
    upstream: str   # "address:port" of the model container on the deployment network
    health: str     # its health path, e.g. "/health"
    weight: int     # share in percent (all backends' weights sum to 100)


@dataclass(frozen=True)
class Plan:
    backends: tuple[Backend, ...]
    token: str | None = None

    def stable(self) -> Backend | None:
        """The backend with the largest weight (ties: the lowest version)."""
        return min(self.backends, key=lambda b: (-b.weight, b.version), default=None)

    def canary(self) -> Backend | None:
        """The other one when there are two."""
        stable = self.stable()
        others = [b for b in self.backends if b is not stable]
        return others[0] if len(self.backends) == 2 else None


def version_port(version: int) -> int:
    """The port of version N's server inside the proxy container (stable: two versions a plan holds at once
    are never 50,000 apart)."""
    return 10000 + version % 50000


def server_name(version: int) -> str:
    return f"v{version}"


def _check(plan: Plan) -> None:
    versions = [b.version for b in plan.backends]
    if not plan.backends or len(set(versions)) != len(versions):
        raise WorkbenchError(f"a proxy plan needs distinct versions, got {versions}")
    if any(b.weight <= 0 for b in plan.backends) or sum(b.weight for b in plan.backends) != 100:
        raise WorkbenchError(f"a proxy plan's weights must be positive and sum to 100, got "
                             f"{[b.weight for b in plan.backends]}")


def _proxy(dials: list[str], **extra: Any) -> dict[str, Any]:
    return {"handler": "reverse_proxy", "upstreams": [{"dial": d} for d in dials],
            "transport": {"protocol": "http", "dial_timeout": DIAL_TIMEOUT},
            "load_balancing": {"selection_policy": {"policy": "round_robin"}, "try_duration": TRY_DURATION,
                               "try_interval": TRY_INTERVAL}, **extra}


def _front(plan: Plan) -> dict[str, Any]:
    unit = reduce(math.gcd, (b.weight for b in plan.backends))
    dials = [f"127.0.0.1:{version_port(b.version)}" for b in sorted(plan.backends, key=lambda b: b.version)
             for _ in range(b.weight // unit)]
    routes: list[dict[str, Any]] = []
    if plan.token:
        routes.append({"match": [{"not": [{"header": {"Authorization": [f"Bearer {plan.token}"]}}]}],
                       "handle": [{"handler": "static_response", "status_code": 401, "body": UNAUTHORIZED,
                                   "headers": {"WWW-Authenticate": ["Bearer"]}}],
                       "terminal": True})
    routes.append({"handle": [_proxy(dials)]})
    return {"listen": [f":{LISTEN}"], "automatic_https": {"disable": True}, "metrics": {}, "routes": routes}


def _version(backend: Backend) -> dict[str, Any]:
    checks = {"active": {"uri": backend.health, "interval": HEALTH_INTERVAL, "timeout": HEALTH_TIMEOUT}}
    return {"listen": [f"127.0.0.1:{version_port(backend.version)}"], "automatic_https": {"disable": True},
            "metrics": {}, "routes": [{"@id": backend.container,
                                       "handle": [_proxy([backend.upstream], health_checks=checks)]}]}


def config(plan: Plan) -> dict[str, Any]:
    """Caddy's JSON config serving `plan` (see the module's doc)."""
    _check(plan)
    servers = {FRONT: _front(plan), METRICS: {
        "listen": [f":{METRICS_PORT}"], "automatic_https": {"disable": True},
        "routes": [{"handle": [{"handler": "metrics"}]}]}}
    servers.update({server_name(b.version): _version(b) for b in plan.backends})
    return {"admin": {"listen": "localhost:2019"}, "apps": {"http": {"grace_period": "30s", "servers": servers}}}


def plan_of(document: dict[str, Any]) -> Plan | None:
    """The plan a config serves (None when it is not one `config` wrote)."""
    try:
        servers = document["apps"]["http"]["servers"]
        front = servers[FRONT]["routes"]
        dials = [u["dial"] for u in front[-1]["handle"][0]["upstreams"]]
        token = None
        if len(front) == 2:
            token = front[0]["match"][0]["not"][0]["header"]["Authorization"][0].removeprefix("Bearer ")
        backends = []
        for name, server in servers.items():
            if not (name.startswith("v") and name[1:].isdigit()):
                continue
            version = int(name[1:])
            route = server["routes"][0]
            handler = route["handle"][0]
            share = dials.count(f"127.0.0.1:{version_port(version)}")
            backends.append(Backend(version, route["@id"], handler["upstreams"][0]["dial"],
                                    handler["health_checks"]["active"]["uri"], share * 100 // len(dials)))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, ZeroDivisionError):
        return None
    return Plan(tuple(sorted(backends, key=lambda b: b.version)), token) if backends else None


def _tar(folder: str, name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directory = tarfile.TarInfo(folder)
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(directory)
        info = tarfile.TarInfo(f"{folder}/{name}")
        # 0600: the config holds the token (Caddy runs as root in the container; nobody else needs it)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _write(container: Any, plan: Plan, filename: str) -> None:
    data = json.dumps(config(plan), indent=1).encode()
    parent, folder = CONFIG_DIR.rsplit("/", 1)
    if not container.put_archive(parent or "/", _tar(folder, filename, data)):
        raise WorkbenchError(f"could not write the proxy's config into {container.name}")


def write_plan(container: Any, plan: Plan) -> None:
    """Puts the config serving `plan` into a created (not yet started) proxy."""
    _write(container, plan, "proxy.json")


def read_plan(container: Any | None) -> Plan | None:
    """What the proxy's config file says it serves (None without a proxy or a config)."""
    import docker.errors

    if container is None:
        return None
    try:
        stream, _ = container.get_archive(CONFIG)
    except docker.errors.NotFound:  # created, never configured (or gone meanwhile)
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("proxy.json")
        try:
            return plan_of(json.loads(member.read())) if member else None
        except ValueError:
            return None


def apply(container: Any, plan: Plan) -> None:
    """Has the running proxy serve `plan` (a graceful `caddy reload`). proxy.json, which a restart reads
    and `read_plan` trusts, is replaced only once Caddy took the new config: a refused reload leaves it
    naming what Caddy still serves."""
    _write(container, plan, NEXT)
    code, output = container.exec_run(["caddy", "reload", "--config", f"{CONFIG_DIR}/{NEXT}"])
    if code != 0:
        lines = (output or b"").decode(errors="replace").strip().splitlines()
        raise WorkbenchError(f"the proxy {container.name} did not take the new plan: "
                             f"{lines[-1] if lines else f'caddy reload exited {code}'}")
    _write(container, plan, "proxy.json")
