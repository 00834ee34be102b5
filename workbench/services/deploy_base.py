"""What every deployment operation shares: where a deployment lives (`Target`: its machine's engine, a way to
ask HTTP there, its files' home), the one-operation-at-a-time lease, the proxy's plan (which versions get
which share of requests), the readiness gate (health, then the smoke request), the endpoint's token, and
retiring a version switched away from."""

from __future__ import annotations

import base64
import os
import posixpath
import re
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from workbench.errors import NotFound, WorkbenchError
from workbench.execution.hosts import sha256_on_host
from workbench.projects.spec import Smoke
from workbench.serving import ports, proxy, serving, traffic
from workbench.serving.health import local_http, local_probe, ssh_http, ssh_probe
from workbench.serving.smoke import smoke_check
from workbench.services.context import Services
from workbench.store.leases import LeaseKeeper, new_owner

DRAIN_SECONDS = 2.0     # after a switch, requests already sent to the old version finish before it stops
LEASE_TTL, LEASE_RENEW = 8.0, 2.0
LEASE_WAIT = 15.0  # a look (list, show, the app's health tick) holds it for a moment: wait that out


def lease(name: str) -> str:
    return f"deployment:{name}"


class Target:
    """Where one deployment lives: its machine's engine, a way to ask HTTP there, and its files' home."""

    def __init__(self, wb: Services, machine: str) -> None:
        self.wb, self.machine = wb, machine
        self.client = wb.executors.docker_client_for(machine)
        self.remote = wb.executors.is_remote(machine)
        transport = wb.executors.connection(machine).transport if self.remote else None
        self.probe: serving.Probe = ssh_probe(transport) if transport else local_probe
        self.http = ssh_http(transport) if transport else local_http
        self._networks: dict[str, str] = {}

    def model_path(self, local: Path, sha: str, replaced: Callable[[str], None]) -> str:
        """The model file where the engine runs: here, the store's copy; on a host, sent once to
        <workbench dir>/models/<sha256> there, reused only while its sha256 computed there is `sha` (a copy
        changed on the host is sent again, and `replaced` is told why)."""
        if not self.remote:
            return str(local)
        host = self.wb.executors.host(self.machine)
        folder = posixpath.join(host.root, "models")
        final = posixpath.join(folder, sha)
        size = local.stat().st_size
        there = sha256_on_host(host.connection, final, size)
        if there == sha:
            return final
        try:
            with host.io_lock:
                sftp = host.sftp()
                host.make_dirs(folder)
                partial = f"{final}.{secrets.token_hex(4)}.partial"  # two deploys may send the same model
                self.wb.progress(f"sending the model ({size:,} bytes) to {self.machine}")
                sftp.put(str(local), partial)
                sftp.chmod(partial, 0o400)  # the login user's alone (its folder, like every one Workbench makes, 0700)
                sftp.posix_rename(partial, final)
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - SFTP and SSH failures, one line naming the host
            raise host.failure("sending the model", exc) from None
        if there is not None:
            replaced(f"the model copy on {self.machine} ({final}) had sha256 {there[:12]}, not the registry's "
                     f"{sha[:12]}: replaced by the registry's file")
        return final

    def code_dir(self, snapshot_hash: str) -> str:
        if not self.remote:
            return str(self.wb.dirs.snapshots / snapshot_hash)
        from workbench.execution.remote_snapshot import send_snapshot

        host = self.wb.executors.host(self.machine)
        return send_snapshot(host.connection, self.wb.dirs.snapshots, snapshot_hash, host.root, self.wb.progress,
                             is_dir=host.is_dir).path

    def ensure_image(self, ref: str) -> str:
        from workbench.execution import images

        if not self.remote:
            return images.ensure_image(self.client, ref, self.wb.progress)
        return images.ensure_image_on(self.client, ref, self.wb.progress, self.machine,
                                      self.wb.executors.local_docker_or_none())

    def owner(self) -> str:
        """"uid:gid" of who owns the model and code files where the engine runs (this user here, the login
        user on a host): the model container runs as them, as it has no capability to read others' files."""
        if not self.remote:
            return f"{os.getuid()}:{os.getgid()}"
        code, out, err = self.wb.executors.connection(self.machine).run(["sh", "-c", "echo $(id -u):$(id -g)"])
        said = out.decode(errors="replace").strip()
        if code != 0 or not re.fullmatch(r"\d+:\d+", said):
            raise WorkbenchError(f"{self.machine}: could not tell the login user's id (`id` said: "
                                 f"{(said or err.decode(errors='replace')).strip()[:100]})")
        return said

    def holder_of(self, bind: str, port: int) -> str | None:
        """The address of the machine that holds `port` where the proxy would listen (None: free)."""
        if not self.remote:
            return ports.holder_here(bind, port)
        return ports.holder_on_host(self.wb.executors.connection(self.machine), bind, port)

    def network(self, name: str) -> str:
        """The deployment's own network (made once; asked of the engine once per Target)."""
        if name not in self._networks:
            self._networks[name] = serving.ensure_network(self.client, self.wb.store.instance, name)
        return self._networks[name]

    def proxy(self, name: str) -> Any | None:
        return serving.get(self.client, serving.proxy_name(self.wb.store.instance, name))


@contextmanager
def engine_errors(machine: str, doing: str) -> Iterator[None]:
    """An engine's refusal (docker-py's exceptions) as one line naming the machine and what was being done."""
    import docker.errors

    try:
        yield
    except docker.errors.DockerException as exc:
        said = str(getattr(exc, "explanation", None) or exc).strip().splitlines()
        raise WorkbenchError(f"{doing}: the engine on {machine} said: {said[0][:300] if said else type(exc).__name__}") \
            from None


# --- one operation at a time -------------------------------------------------------------------------------

def hold(wb: Services, name: str) -> tuple[str, LeaseKeeper]:
    """The deployment's lease, kept alive from a thread until released (one operation at a time)."""
    owner = new_owner()
    deadline = time.monotonic() + LEASE_WAIT
    while not wb.store.acquire_lease(lease(name), owner, LEASE_TTL):
        if time.monotonic() > deadline:
            raise WorkbenchError(f"deployment {name} is being changed by another Workbench "
                                 f"({wb.store.lease_holder(lease(name))})")
        time.sleep(0.2)
    return owner, LeaseKeeper(wb.store, lease(name), owner, LEASE_TTL, LEASE_RENEW)


def try_hold(wb: Services, name: str) -> tuple[str, LeaseKeeper] | None:
    """The lease now, or None when another Workbench is at work on the deployment (for the watcher)."""
    owner = new_owner()
    if not wb.store.acquire_lease(lease(name), owner, LEASE_TTL):
        return None
    return owner, LeaseKeeper(wb.store, lease(name), owner, LEASE_TTL, LEASE_RENEW)


def release(wb: Services, name: str, owner: str, keeper: LeaseKeeper) -> None:
    keeper.stop()
    wb.store.release_lease(lease(name), owner)


@contextmanager
def holding(wb: Services, name: str) -> Iterator[None]:
    owner, keeper = hold(wb, name)
    try:
        yield
    finally:
        release(wb, name, owner, keeper)


def check_lease(keeper: LeaseKeeper, name: str) -> None:
    """Before touching what serves: a Workbench stuck longer than the lease lets another take over."""
    if keeper.lost.is_set():
        raise WorkbenchError(f"deployment {name} was taken over by another Workbench while this one was stalled")


def event(wb: Services, name: str, kind: str, message: str, **versions: Any) -> None:
    wb.store.add_deployment_event(name, kind, message, **versions)
    wb.progress(message)


def get_record(wb: Services, name: str) -> dict[str, Any]:
    record = wb.store.get_deployment(name)
    if record is None:
        known = ", ".join(d["name"] for d in wb.store.deployments()) or "none yet"
        raise NotFound(f"no deployment {name!r} (deployments: {known})", hint="see `workbench deployments list`")
    return record


# --- the endpoint's token ------------------------------------------------------------------------------------

def token_path(wb: Services, name: str) -> Path:
    return wb.dirs.data / "deployments" / f"{name}.token"


def token(wb: Services, name: str, create: bool = False) -> str | None:
    """The deployment's bearer token (0600 in the data dir), made once when `create`."""
    path = token_path(wb, name)
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


# --- the proxy's plan ----------------------------------------------------------------------------------------

def backend(container: Any, version: int, network: str, weight: int) -> proxy.Backend:
    return proxy.Backend(version=version, container=container.name, upstream=serving.upstream(container, network),
                         health=serving.health_path(container), weight=weight)


def plan_for(wb: Services, record: dict[str, Any], backends: list[proxy.Backend]) -> proxy.Plan:
    """The plan for `backends` (in version order, as `read_plan` gives them back), with the deployment's
    token when it asks for one: a token file gone is an error, never an endpoint left open."""
    secret = None
    if record.get("auth") == "token":
        secret = token(wb, record["name"])
        if secret is None:
            raise WorkbenchError(f"the token of deployment {record['name']} is gone ({token_path(wb, record['name'])})",
                                 hint=f"deploy it again to make a new one (callers then need it): `workbench deploy "
                                      f"{record['model']}:{record['live_version']} --machine {record['machine']}`")
    return proxy.Plan(backends=tuple(sorted(backends, key=lambda b: b.version)), token=secret)


def apply_plan(wb: Services, target: Target, record: dict[str, Any], plan: proxy.Plan) -> None:
    """The proxy sends requests as `plan` says (started with it if it was not running)."""
    name = record["name"]
    network = target.network(name)
    found, started = serving.ensure_proxy(
        target.client, serving.proxy_name(wb.store.instance, name), record["port"], record.get("bind") or "0.0.0.0",
        plan, network, serving.labels(wb.store.instance, name, "proxy"), target.probe)
    if not started:
        proxy.apply(found, plan)
    remember_proxy(wb, record, serving.address(found, network))


def remember_proxy(wb: Services, record: dict[str, Any], where: str | None) -> None:
    """Keeps the proxy's address on the deployment network in the record: its metrics are then read with
    one HTTP request (over SSH: one channel), no engine call (each costs a `docker system dial-stdio` on a
    host: hundreds of milliseconds)."""
    if where and where != record.get("proxy_address"):
        wb.store.update_deployment(record["name"], proxy_address=where)
        record["proxy_address"] = where


def read_counters(wb: Services, target: Target, record: dict[str, Any]) -> dict[str, Any]:
    """The proxy's counters per server (traffic.Counters), read at its remembered address, or (when that
    does not answer: a restart may have moved it) at the address the engine gives now."""
    where = record.get("proxy_address")
    text = serving.metrics_at(target.http, where) if where else None
    if text is None:
        proxy_container = target.proxy(record["name"])
        if proxy_container is None:
            raise WorkbenchError(f"the proxy of {record['name']} is gone from {record['machine']}")
        where = serving.address(proxy_container, target.network(record["name"]))
        text = serving.metrics_at(target.http, where) if where else None
        if text is None:
            raise WorkbenchError(f"the proxy {proxy_container.name} did not give its traffic figures")
        remember_proxy(wb, record, where)
    return traffic.parse(text)[0]


def serve_only(wb: Services, target: Target, record: dict[str, Any], container: Any, version: int) -> None:
    apply_plan(wb, target, record, plan_for(wb, record, [backend(container, version, target.network(record["name"]),
                                                                 100)]))


# --- readiness -----------------------------------------------------------------------------------------------

def smoke_of(launch: dict[str, Any] | None) -> Any | None:
    raw = (launch or {}).get("smoke")
    if not raw:
        return None
    return Smoke(path=raw["path"], body=base64.b64decode(raw["body"]) if raw.get("body") is not None else None,
                 expect_status=raw.get("expect_status", 200), expect_json_keys=tuple(raw.get("expect_json_keys", ())))


def smoke_json(smoke: Any | None) -> dict[str, Any] | None:
    if smoke is None:
        return None
    return {"path": smoke.path, "body": base64.b64encode(smoke.body).decode() if smoke.body is not None else None,
            "expect_status": smoke.expect_status, "expect_json_keys": list(smoke.expect_json_keys)}


def wait_ready(wb: Services, target: Target, container: Any, timeout: float, smoke: Any | None) -> float:
    """Seconds until the new version answered its health path with 200 and then passed its smoke request,
    asked directly (no caller sees it yet); raises with what it got otherwise."""
    took = serving.wait_healthy(container, target.probe, timeout, wb.progress)
    if smoke is None:
        return took
    started = time.monotonic()
    where = serving.address(container)
    port = int(container.labels.get("workbench.port", "8000"))
    failed = smoke_check(target.http, where or "", port, smoke) if where else "it has no address"
    if failed:
        raise WorkbenchError(f"its smoke request failed: {failed}")
    return took + (time.monotonic() - started)


# --- the version switched away from -------------------------------------------------------------------------

def remove_container(client: Any, container_name: str) -> None:
    found = serving.get(client, container_name)
    if found is not None:
        found.remove(force=True)


def quietly(action: Any, *args: Any) -> None:
    """A clean-up step whose failure must not hide the error or result being reported."""
    try:
        action(*args)
    except Exception:  # noqa: BLE001
        pass


def retire(wb: Services, target: Target, name: str, container_name: str, *, drain: bool = True,
           release_gpus: bool = False) -> None:
    """The version switched away from: requests in flight finish, then it stops and is kept for rollback."""
    if drain:
        time.sleep(DRAIN_SECONDS)
    old = serving.get(target.client, container_name)
    if old is not None:
        if release_gpus:  # its GPUs go to the new version: it comes back from its image, not as it was
            old.remove(force=True)
        else:
            serving.stop_keep(old)
    # a --stop-first version stays the way back: `rollback` starts it again from its image
    wb.store.set_target_state(name, container_name, "standby-gone" if release_gpus else "standby")
    if release_gpus:
        return
    for earlier in [t for t in wb.store.targets(name)
                    if t["state"] in ("standby", "standby-gone") and t["container"] != container_name]:
        # one version is kept to go back to; older ones would hold their GPUs and disk for nothing
        quietly(remove_container, target.client, earlier["container"])
        wb.store.set_target_state(name, earlier["container"], "removed")


def counters_now(wb: Services, target: Target, record: dict[str, Any]) -> dict[str, Any] | None:
    """The proxy's counters per server, as JSON (None when it does not answer)."""
    try:
        servers = read_counters(wb, target, get_record(wb, record["name"]))
    except Exception:  # noqa: BLE001 - figures are extra: a switch never fails for them
        return None
    return traffic.snapshot(servers, time.time())
