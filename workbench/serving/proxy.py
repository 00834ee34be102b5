"""The reverse proxy in front of a deployment: a Caddy container (`caddy:2`, Debian's caddy 2.6.2 in the
stand-in) publishing the deployment's port, and what it serves, a `Plan` (the versions and their shares).

Its config has one server per version, `v<N>`, on a unix socket inside the container (`version_socket`): it
sends to that version's model container and asks its health path itself (Caddy's active health checks,
every 0.5 s), so a dead container is out of rotation within 2 s and callers get a 503 in about 1 s. The
server `front` (the published port) sends each request to the version servers by round robin over one
entry per weight unit (caddy 2.6 has no weighted policy: 90/10 is 9 entries of one and 1 of the other,
an exact split), after refusing a request without the bearer token when the plan has one. `front` and
every `v<N>` count their requests (`"metrics": {}`), so the counters say which version served; the
server `metrics` (not counted itself, never published) answers them on METRICS_PORT.

The config names everything the plan holds (each version server's route carries the serving container's
name as its `@id`; Caddy refuses unknown keys), so `plan_of` reads the plan back from the file. A change
is loaded by `caddy reload` in the steps `apply` explains (Caddy 2.6's reload is not as graceful as it
says), and the file a restarted proxy reads is replaced only after Caddy took the new one."""

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
# Every answer closes its connection: a reload (a switch) closes the connections kept alive between requests,
# and a client that sends its next request on one just closed gets no answer (measured: 19 of 20 switches
# failed one request of an http.client caller reusing its connection; none with this). Set by the proxy
# handler itself: each route has one handler, as Caddy counts a request once per handler it passes.
CLOSE = {"response": {"set": {"Connection": ["close"]}}}
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


def version_socket(version: int) -> str:
    """Where version N's server listens inside the proxy container: a unix socket, which Caddy hands from
    one config to the next (a TCP listener is opened anew with SO_REUSEPORT at each reload and the old one
    closed, resetting the connections queued on it: measured, 1-2 failed requests in 20 switches)."""
    return f"unix//tmp/workbench-v{version}.sock"


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
            "transport": {"protocol": "http", "dial_timeout": DIAL_TIMEOUT, "keep_alive": {"enabled": False}},
            "load_balancing": {"selection_policy": {"policy": "round_robin"}, "try_duration": TRY_DURATION,
                               "try_interval": TRY_INTERVAL}, **extra}


def _front(plan: Plan) -> dict[str, Any]:
    unit = reduce(math.gcd, (b.weight for b in plan.backends))
    dials = [version_socket(b.version) for b in sorted(plan.backends, key=lambda b: b.version)
             for _ in range(b.weight // unit)]
    routes: list[dict[str, Any]] = []
    if plan.token:
        routes.append({"match": [{"not": [{"header": {"Authorization": [f"Bearer {plan.token}"]}}]}],
                       "handle": [{"handler": "static_response", "status_code": 401, "body": UNAUTHORIZED,
                                   "headers": {"WWW-Authenticate": ["Bearer"], "Connection": ["close"]}}],
                       "terminal": True})
    routes.append({"handle": [_proxy(dials, headers=CLOSE)]})
    return {"listen": [f":{LISTEN}"], "automatic_https": {"disable": True}, "metrics": {}, "routes": routes}


def _version(backend: Backend) -> dict[str, Any]:
    checks = {"active": {"uri": backend.health, "interval": HEALTH_INTERVAL, "timeout": HEALTH_TIMEOUT}}
    return {"listen": [version_socket(backend.version)], "automatic_https": {"disable": True},
            "metrics": {}, "routes": [{"@id": backend.container,
                                       "handle": [_proxy([backend.upstream], health_checks=checks)]}]}


def config(plan: Plan, linger: tuple[Backend, ...] = ()) -> dict[str, Any]:
    """Caddy's JSON config serving `plan` (see the module's doc), with a server kept for each of `linger`
    (versions the front no longer sends to: see `apply`)."""
    _check(plan)
    servers = {FRONT: _front(plan), METRICS: {
        "listen": [f":{METRICS_PORT}"], "automatic_https": {"disable": True},
        "routes": [{"handle": [{"handler": "metrics"}]}]}}
    served = {b.version for b in plan.backends}
    servers.update({server_name(b.version): _version(b) for b in linger if b.version not in served})
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
            share = dials.count(version_socket(version))
            if not share:
                continue  # lingering after a switch: not part of the plan
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


def _write(container: Any, document: dict[str, Any], filename: str) -> None:
    data = json.dumps(document, indent=1).encode()
    parent, folder = CONFIG_DIR.rsplit("/", 1)
    if not container.put_archive(parent or "/", _tar(folder, filename, data)):
        raise WorkbenchError(f"could not write the proxy's config into {container.name}")


def write_plan(container: Any, plan: Plan) -> None:
    """Puts the config serving `plan` into a created (not yet started) proxy."""
    _write(container, config(plan), "proxy.json")


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


def _reload(container: Any, document: dict[str, Any]) -> None:
    _write(container, document, NEXT)
    code, output = container.exec_run(["caddy", "reload", "--config", f"{CONFIG_DIR}/{NEXT}"])
    if code != 0:
        lines = (output or b"").decode(errors="replace").strip().splitlines()
        raise WorkbenchError(f"the proxy {container.name} did not take the new plan: "
                             f"{lines[-1] if lines else f'caddy reload exited {code}'}")


def apply(container: Any, plan: Plan) -> None:
    """Has the running proxy serve `plan`. proxy.json, which a restart reads and `read_plan` trusts, is
    replaced only once Caddy took the new config: a refused reload leaves it naming what Caddy still serves.

    Caddy 2.6 starts a config's servers in no set order, cancels the old config's grace period at once,
    and cannot retry a request with a body once a dial failed (Go closed the body); so a front that sent
    to a version server not listening yet, or no longer, failed requests (measured: 2-6 of ~2,000 POSTs
    over 20 switches). Hence two reloads when versions are added: first the new version servers beside
    the old front, then the new front; and a version the front stops sending to keeps its server until the
    next apply (requests the old front accepted still reach it)."""
    before = read_plan(container)
    old = {b.version: b for b in before.backends} if before else {}
    added = tuple(b for b in plan.backends if b.version not in old)
    if before is not None and added:
        _reload(container, config(before, linger=added))
    kept = tuple(b for version, b in old.items() if version not in {n.version for n in plan.backends})
    document = config(plan, linger=kept)
    _reload(container, document)
    _write(container, document, "proxy.json")
