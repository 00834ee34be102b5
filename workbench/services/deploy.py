"""Deployments: promote a registered model version to a health-checked service on a machine, switch to a
new version blue/green (start beside, wait for health, switch the proxy, drain, stop and keep the old),
roll back the same way, and reconcile what the records say with what the machine runs.

One operation at a time per deployment (a lease in the database, renewed while it works): a second
`deploy` of the same name waits for nothing and says who holds it. The operation is recorded before the
machine is touched, so a deploy killed half-way is found by the next look (`deployments list|show`, the
app) and reconciled to the one version the proxy serves."""

from __future__ import annotations

import posixpath
from contextlib import contextmanager
import secrets
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

from workbench.errors import NotFound, WorkbenchError
from workbench.execution.hosts import sha256_on_host
from workbench.execution.ingest import new_owner
from workbench.execution.lease_keeper import LeaseKeeper
from workbench.registry import proxy, serving
from workbench.registry.health import local_listening, local_probe, ssh_listening, ssh_probe
from workbench.registry.models import check_name
from workbench.services import models
from workbench.services.context import Services

DEFAULT_PORT = 8080
DRAIN_SECONDS = 2.0     # after a switch, requests already sent to the old version finish before it stops
LEASE_TTL, LEASE_RENEW = 8.0, 2.0
LEASE_WAIT = 15.0  # a look (list, show, the app's health tick) holds it for a moment: wait that out
ROLLBACK_TIMEOUT = 120.0  # the kept version loaded its model once already


def lease(name: str) -> str:
    return f"deployment:{name}"


class Target:
    """Where one deployment lives: its machine's engine, a way to ask health there, and its files' home."""

    def __init__(self, wb: Services, machine: str) -> None:
        self.wb, self.machine = wb, machine
        self.client = wb.executors.docker_client_for(machine)
        self.remote = wb.executors.is_remote(machine)
        transport = wb.executors.connection(machine).transport if self.remote else None
        self.probe: serving.Probe = ssh_probe(transport) if transport else local_probe
        self.listening = ssh_listening(transport) if transport else local_listening

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


def _spec_of(version: dict[str, Any]) -> Any:
    from workbench.projects.spec import load_spec

    lineage = version["lineage"]
    path = lineage["project_path"]
    if not Path(path).is_dir():
        raise WorkbenchError(f"the project of {version['name']}:{version['version']} is gone ({path})",
                             hint="its [deploy] table and serving code are read from there")
    spec = load_spec(path)
    if spec.deploy is None:
        raise WorkbenchError(f"project {spec.name} has no [deploy] table in {spec.spec_path}",
                             hint='add one: [deploy] image = "python:3.11-slim", command = ["python", "serve.py", '
                                  '"--model", "{model}", "--port", "{port}"] (see README, Deploy a model)')
    return spec


def _event(wb: Services, name: str, kind: str, message: str, **versions: Any) -> None:
    wb.store.add_deployment_event(name, kind, message, **versions)
    wb.progress(message)


def deploy(wb: Services, ref: str, machine: str, *, port: int | None = None, name: str | None = None,
           stop_first: bool = False) -> dict[str, Any]:
    from workbench.projects.snapshot import snapshot_lock, take_snapshot
    from workbench.projects.spec import substitute
    from workbench.services.images import image_for

    machine = wb.executors.machine(machine)
    version = models.resolve(wb, ref)
    model_file = models.model_file(wb, version)
    spec = _spec_of(version)
    d = spec.deploy
    name = check_name(name or version["name"], "deployment name")
    existing = wb.store.get_deployment(name)
    if existing and existing["machine"] != machine:
        raise WorkbenchError(f"deployment {name} lives on {existing['machine']}",
                             hint=f"stop it there first (`workbench deployments stop {name} --remove`), or pass --name")
    port = port or (existing["port"] if existing else DEFAULT_PORT)
    owner, keeper = _hold(wb, name)
    label = f"{version['name']}:{version['version']}"
    container_name = None
    try:
        if not existing:
            wb.store.create_deployment(name, version["name"], machine, port)
        record = reconcile(wb, _get(wb, name), quiet=True, owner=owner)
        target = Target(wb, machine)
        live = record["live_container"]
        proxy_name = serving.proxy_name(wb.store.instance, name)
        if port != record["port"]:
            if live:
                raise WorkbenchError(f"deployment {name} serves on port {record['port']}",
                                     hint="its endpoint stays; to move it, stop it with --remove and deploy again")
            if target.listening(port):
                raise WorkbenchError(f"port {port} is in use on {machine}", hint="pick another with --port")
            old_proxy = serving.get(target.client, proxy_name)  # nothing serves on the old port: the endpoint moves
            if old_proxy is not None:
                old_proxy.remove(force=True)
            wb.store.update_deployment(name, port=port)
            record = _get(wb, name)
        if serving.get(target.client, proxy_name) is None and target.listening(port):
            raise WorkbenchError(f"port {port} is in use on {machine}", hint="pick another with --port")
        wb.store.update_deployment(name, operation={"kind": "deploy", "version": version["version"], "owner": owner,
                                                    "started": time.time()},
                                   status=record["status"] if live else "deploying")
        # held until the target (and its snapshot) is recorded: gc keeps what a record names
        with snapshot_lock(wb.dirs.snapshots, exclusive=False):
            snapshot = take_snapshot(spec.root, spec.exclude, wb.dirs.snapshots)
            code = target.code_dir(snapshot.hash)
            model_path = target.model_path(model_file, version["sha256"],
                                           lambda why: _event(wb, name, "model-replaced", why))
            experiment = (spec.experiments.get(version["lineage"]["experiment"])
                          or next(iter(spec.experiments.values())))
            image = image_for(wb, spec, replace(experiment, image=d.image, dockerfile=d.dockerfile),
                              wb.dirs.snapshots / snapshot.hash, snapshot.hash, None, machine=machine)
            target.ensure_image(proxy.IMAGE)
            gpu_ids = _gpus_for(wb, target, record, d.gpus, stop_first, label)
            live = record["live_container"]  # None once --stop-first removed it
            container_name = serving.target_name(name, version["version"])
            command = substitute(d.command, {"model": f"{serving.MODEL_DIR}/{version['filename']}", "port": d.port})
            _check_lease(keeper, name)
            try:
                wb.store.add_target(name, container_name, version["version"], version["sha256"], "starting",
                                    snapshot=snapshot.hash, machine=machine, gpu_uuids=gpu_ids)
            except sqlite3.IntegrityError:
                raise WorkbenchError(f"the GPU(s) picked on {machine} were taken by another run meanwhile",
                                     hint="deploy again: it picks among those still free") from None
        wb.progress(f"starting {label} on {machine} ({container_name})")
        container = serving.start_target(
            target.client, name=container_name, image=image, command=command, env=d.env, code_dir=code,
            model_path=model_path, model_file=version["filename"], gpu_ids=gpu_ids,
            container_labels={**serving.labels(wb.store.instance, name, "serve", version["version"]),
                              "workbench.port": str(d.port), "workbench.health": d.health})
        try:
            took = serving.wait_healthy(container, target.probe, d.timeout, wb.progress)
        except WorkbenchError as exc:
            container.remove(force=True)
            wb.store.set_target_state(name, container_name, "failed")
            keeps = (f"; v{record['live_version']} keeps serving" if live else "")
            _event(wb, name, "deploy-failed", f"{label} not deployed: {exc.message}{keeps}",
                   from_version=record["live_version"], to_version=version["version"], health="failing")
            wb.store.update_deployment(name, operation=None, status="live" if live else "failed",
                                       status_reason=f"{label}: {exc.message}")
            raise WorkbenchError(f"{label} not deployed: {exc.message}{keeps}") from None
        _check_lease(keeper, name)
        _switch(wb, target, record, container)
        wb.store.set_target_state(name, container_name, "live")
        wb.store.update_deployment(name, live_version=version["version"], live_container=container_name,
                                   proxy=serving.proxy_name(wb.store.instance, name), status="live",
                                   status_reason=None, health="ok", health_at=time.time(), operation=None)
        verb = f"switched v{record['live_version']} → v{version['version']}" if live else f"v{version['version']} live"
        _event(wb, name, "switch" if live else "deploy", f"{name}: {verb} on {machine}:{port} (healthy after "
               f"{took:.1f} s)", from_version=record["live_version"], to_version=version["version"], health="ok")
        if live and live != container_name:
            _retire(wb, target, name, live)
        return show(wb, name, check=False)
    except BaseException as exc:
        current = wb.store.get_deployment(name)
        if container_name and current and current["live_container"] != container_name:
            if not _discard(wb, machine, name, container_name, current["live_container"]):
                raise  # the machine did not answer: the operation stays recorded, for the next look to settle
        if current and current.get("operation") and current["operation"].get("owner") == owner:
            wb.store.update_deployment(name, operation=None, status="live" if current["live_container"] else "failed",
                                       status_reason=f"{label}: {getattr(exc, 'message', None) or exc!r}")
        raise
    finally:
        _release(wb, name, owner, keeper)


def _hold(wb: Services, name: str) -> tuple[str, LeaseKeeper]:
    """The deployment's lease, kept alive from a thread until released (one operation at a time)."""
    owner = new_owner()
    deadline = time.monotonic() + LEASE_WAIT
    while not wb.store.acquire_lease(lease(name), owner, LEASE_TTL):
        if time.monotonic() > deadline:
            raise WorkbenchError(f"deployment {name} is being changed by another Workbench "
                                 f"({wb.store.lease_holder(lease(name))})")
        time.sleep(0.2)
    return owner, LeaseKeeper(wb.store, lease(name), owner, LEASE_TTL, LEASE_RENEW)


def _release(wb: Services, name: str, owner: str, keeper: LeaseKeeper) -> None:
    keeper.stop()
    wb.store.release_lease(lease(name), owner)


@contextmanager
def _holding(wb: Services, name: str) -> Iterator[None]:
    owner, keeper = _hold(wb, name)
    try:
        yield
    finally:
        _release(wb, name, owner, keeper)


def _check_lease(keeper: LeaseKeeper, name: str) -> None:
    """Before touching what serves: a Workbench stuck longer than the lease lets another take over."""
    if keeper.lost.is_set():
        raise WorkbenchError(f"deployment {name} was taken over by another Workbench while this one was stalled")


def _discard(wb: Services, machine: str, name: str, container_name: str, live_name: str | None) -> bool:
    """Removes a container that never served, the proxy kept on `live_name` (False when the machine does
    not answer)."""
    try:
        client = Target(wb, machine).client
        proxy_container = serving.get(client, serving.proxy_name(wb.store.instance, name))
        served = proxy.read_serving(proxy_container)
        if served and served[0] == container_name:
            return False  # the switch happened before the failure: the next look records it as live
        live = serving.get(client, live_name) if live_name else None
        if live is not None and proxy_container is not None and proxy_container.status == "running" \
                and serving.address(live):
            # Caddy may have taken the new config before its file was written: back onto the live version
            proxy.reload(proxy_container, serving.upstream(live), live.name)
        _remove(client, container_name)
    except Exception:  # noqa: BLE001 - the machine went away: the next reconcile settles it
        return False
    wb.store.set_target_state(name, container_name, "failed")
    return True



def _gpus_for(wb: Services, target: Target, record: dict[str, Any], count: int, stop_first: bool,
              label: str) -> list[str]:
    if not count:
        return []
    from workbench.services.launch import pick_gpus

    try:
        return [g.uuid for g in pick_gpus(wb, count, target.machine).gpus]
    except WorkbenchError as exc:
        live = record["live_container"]
        if not live:
            raise
        if not stop_first:
            raise WorkbenchError(f"{target.machine} cannot hold both versions: {label} needs {count} GPU(s) while "
                                 f"v{record['live_version']} holds its own ({exc.message})",
                                 hint="pass --stop-first to stop the live version before starting the new one "
                                      "(requests fail until it is healthy)") from None
    _event(wb, record["name"], "stop-first", f"{record['name']}: stopping v{record['live_version']} first to free "
           "its GPUs (requests fail until the new version is healthy)", from_version=record["live_version"])
    _retire(wb, target, record["name"], record["live_container"], drain=False, release=True)
    wb.store.update_deployment(record["name"], live_container=None, status="deploying")
    record["live_container"] = None
    return [g.uuid for g in pick_gpus(wb, count, target.machine).gpus]


def _switch(wb: Services, target: Target, record: dict[str, Any], container: Any) -> None:
    """The proxy sends every new request to `container` (started with it if it was not running)."""
    name = record["name"]
    found, started = serving.ensure_proxy(target.client, serving.proxy_name(wb.store.instance, name), record["port"],
                                          container, serving.labels(wb.store.instance, name, "proxy"), target.probe)
    if not started:
        proxy.reload(found, serving.upstream(container), container.name)


def _retire(wb: Services, target: Target, name: str, container_name: str, *, drain: bool = True,
            release: bool = False) -> None:
    """The version switched away from: requests in flight finish, then it stops and is kept for rollback."""
    if drain:
        time.sleep(DRAIN_SECONDS)
    old = serving.get(target.client, container_name)
    if old is not None:
        if release:  # its GPUs go to the new version: it cannot come back as it was
            old.remove(force=True)
        else:
            serving.stop_keep(old)
    wb.store.set_target_state(name, container_name, "removed" if release else "standby")
    if release:
        return  # --stop-first: the standby kept so far is the way back if the new version fails
    for earlier in [t for t in wb.store.targets(name) if t["state"] == "standby" and t["container"] != container_name]:
        # one version is kept to go back to; older ones would hold their GPUs and disk for nothing
        _quietly(_remove, target.client, earlier["container"])
        wb.store.set_target_state(name, earlier["container"], "removed")


def _remove(client: Any, container_name: str) -> None:
    found = serving.get(client, container_name)
    if found is not None:
        found.remove(force=True)


def _quietly(action: Any, *args: Any) -> None:
    """A clean-up step whose failure must not hide the error or result being reported."""
    try:
        action(*args)
    except Exception:  # noqa: BLE001
        pass


def rollback(wb: Services, name: str) -> dict[str, Any]:
    record = _get(wb, name)
    owner, keeper = _hold(wb, name)
    try:
        record = reconcile(wb, record, quiet=True, owner=owner)
        standby = [t for t in wb.store.targets(name) if t["state"] == "standby"]
        if not standby:
            raise WorkbenchError(f"deployment {name} has no earlier version kept to go back to")
        back = max(standby, key=lambda t: t["state_at"])  # the one live most recently
        target = Target(wb, record["machine"])
        container = serving.get(target.client, back["container"])
        if container is None:
            wb.store.set_target_state(name, back["container"], "removed")
            raise WorkbenchError(f"the container of v{back['version']} is gone from {record['machine']}",
                                 hint=f"deploy it again: `workbench deploy {record['model']}:{back['version']} "
                                      f"--machine {record['machine']}`")
        # the kept container mounts the host's copy by path when it starts again: that copy must be the model
        kept = models.resolve(wb, f"{record['model']}:{back['version']}")
        target.model_path(models.model_file(wb, kept), back["sha256"],
                          lambda why: _event(wb, name, "model-replaced", why))
        wb.store.update_deployment(name, operation={"kind": "rollback", "version": back["version"], "owner": owner,
                                                    "started": time.time()})
        started = time.monotonic()
        serving.start_again(container)
        try:
            serving.wait_healthy(container, target.probe, ROLLBACK_TIMEOUT, wb.progress)
            _check_lease(keeper, name)
        except WorkbenchError as exc:
            _quietly(serving.stop_keep, container)  # kept as it was, for another try
            message = f"{name}: rollback to v{back['version']} failed: {exc.message}" + (
                f"; v{record['live_version']} keeps serving" if record["live_container"] else "")
            _event(wb, name, "rollback-failed", message, from_version=record["live_version"],
                   to_version=back["version"], health="failing")
            raise WorkbenchError(message) from None
        _switch(wb, target, record, container)
        wb.store.set_target_state(name, back["container"], "live")
        previous = record["live_container"]
        wb.store.update_deployment(name, live_version=back["version"], live_container=back["container"], status="live",
                                   status_reason=None, health="ok", health_at=time.time(), operation=None)
        _event(wb, name, "rollback", f"{name}: rolled back v{record['live_version']} → v{back['version']} in "
               f"{time.monotonic() - started:.1f} s", from_version=record["live_version"], to_version=back["version"],
               health="ok")
        if previous:
            _retire(wb, target, name, previous)
        return show(wb, name, check=False)
    except BaseException:
        current = wb.store.get_deployment(name)
        if current and current.get("operation") and current["operation"].get("owner") == owner:
            wb.store.update_deployment(name, operation=None)
        raise
    finally:
        _release(wb, name, owner, keeper)


def _get(wb: Services, name: str) -> dict[str, Any]:
    record = wb.store.get_deployment(name)
    if record is None:
        known = ", ".join(d["name"] for d in wb.store.deployments()) or "none yet"
        raise NotFound(f"no deployment {name!r} (deployments: {known})", hint="see `workbench deployments list`")
    return record


def reconcile(wb: Services, record: dict[str, Any], quiet: bool = False, owner: str | None = None) -> dict[str, Any]:
    """Makes the record tell the truth: an operation whose owner is gone (killed mid-deploy) is settled on
    the version the proxy serves, and the container it was starting is removed; a proxy that is gone or
    stopped is brought back on the live version; a live container that moved is re-pointed; the live
    version's health is asked. With `quiet` False an unreachable machine is said and nothing changes.
    Called without `owner`, it takes the deployment's lease for its changes (and leaves a deployment that
    another Workbench is changing as its record says)."""
    name = record["name"]
    mine = owner or new_owner()
    if not wb.store.acquire_lease(lease(name), mine, LEASE_TTL):
        return record  # another Workbench is at work on it now
    keeper = LeaseKeeper(wb.store, lease(name), mine, LEASE_TTL, LEASE_RENEW) if owner is None else None
    try:
        return _reconcile(wb, record, quiet)
    except WorkbenchError as exc:
        if quiet:
            raise
        detail = exc.message
    except Exception as exc:  # noqa: BLE001 - an engine or SSH failure: this deployment's health is unknown
        if quiet:
            raise
        wb.executors.forget_machine(record["machine"])
        detail = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    finally:
        if keeper is not None:
            keeper.stop()
            wb.store.release_lease(lease(name), mine)
    wb.store.update_deployment(name, health="unknown", health_at=time.time())
    return {**record, "health": "unknown", "health_detail": f"{record['machine']}: {detail}"}


def _reconcile(wb: Services, record: dict[str, Any], quiet: bool) -> dict[str, Any]:
    name = record["name"]
    target = Target(wb, record["machine"])
    proxy_name = serving.proxy_name(wb.store.instance, name)
    proxy_container = serving.get(target.client, proxy_name)
    serves = proxy.read_serving(proxy_container)
    settled = bool(record.get("operation"))
    if settled:
        record = _settle(wb, target, record, serves[0] if serves else record["live_container"])
    if record["live_container"] and record["status"] == "live":
        live = serving.get(target.client, record["live_container"])
        if live is not None and live.status in ("exited", "created"):
            serving.start_again(live)  # stopped by hand, or its engine restarted without it
        where = serving.address(live) if live is not None else None
        if where is None:
            pass  # gone, or crash-looping with no address: nothing to point the proxy at; its health says so
        elif proxy_container is None or proxy_container.status != "running":
            serving.ensure_proxy(target.client, proxy_name, record["port"], live,
                                 serving.labels(wb.store.instance, name, "proxy"), target.probe)
            what = "gone" if proxy_container is None else proxy_container.status
            wb.store.add_deployment_event(name, "proxy-restarted", f"{name}: the proxy was {what}; started "
                                          f"again on port {record['port']}")
        elif settled or (serves and serves[1] != serving.upstream(live)):
            # a restart gave it a new address; or an interrupted switch, where Caddy may have taken a config
            # its file does not show yet: point it at the settled version either way
            proxy.reload(proxy_container, serving.upstream(live), live.name)
        _check_health(wb, target, record, live)
    return _get(wb, name)


def _settle(wb: Services, target: Target, record: dict[str, Any], serving_name: str | None) -> dict[str, Any]:
    """An operation left behind by a Workbench that stopped half-way: the proxy's upstream decides, if it
    names a version that was not given up (removed, failed) and whose container is still there."""
    name, operation = record["name"], record["operation"]
    targets = wb.store.targets(name)
    live = next((t for t in targets if t["container"] == serving_name and t["state"] not in ("removed", "failed")),
                None)
    if live is not None and serving.get(target.client, live["container"]) is None:
        live = None
    for t in targets:
        if t["state"] == "starting" and (live is None or t["container"] != live["container"]):
            _remove(target.client, t["container"])
            wb.store.set_target_state(name, t["container"], "failed")
    if live is not None:
        wb.store.set_target_state(name, live["container"], "live")
        for t in targets:
            if t["state"] == "live" and t["container"] != live["container"]:
                old = serving.get(target.client, t["container"])
                if old is not None and old.status == "running":
                    serving.stop_keep(old)  # switched away from before the interruption: kept for rollback
                wb.store.set_target_state(name, t["container"], "standby")
    what = f"{operation['kind']} of v{operation.get('version')}"
    wb.store.update_deployment(name, operation=None, status="live" if live else "failed",
                               live_version=live["version"] if live else record["live_version"],
                               live_container=live["container"] if live else None,
                               status_reason=f"{what} was interrupted")
    wb.store.add_deployment_event(name, "reconciled", f"{name}: {what} was interrupted; "
                                  + (f"v{live['version']} is live" if live else "nothing is live"),
                                  to_version=live["version"] if live else None)
    return _get(wb, name)


def _check_health(wb: Services, target: Target, record: dict[str, Any], live: Any) -> None:
    status = None
    if live is not None:
        where = serving.address(live)
        port = int(live.labels.get("workbench.port", "8000"))
        status = target.probe(where, port, serving.health_path(live)) if where else None
    health = "ok" if status == 200 else "failing"
    if health != record.get("health"):
        wb.store.add_deployment_event(record["name"], "health", f"{record['name']}: v{record['live_version']} health "
                                      f"{health}" + (f" (HTTP {status})" if status and status != 200 else
                                                     "" if status else " (no answer)"),
                                      to_version=record["live_version"], health=health)
    wb.store.update_deployment(record["name"], health=health, health_at=time.time())


def deployments(wb: Services, check: bool = True) -> list[dict[str, Any]]:
    out = []
    for record in wb.store.deployments():
        out.append(_summary(wb, reconcile(wb, record) if check else record))
    return out


def _summary(wb: Services, record: dict[str, Any]) -> dict[str, Any]:
    events = wb.store.deployment_events(record["name"], limit=50)
    switches = [e for e in events if e["kind"] in ("deploy", "switch", "rollback")]
    host = record["machine"]
    if host != "local":
        machine = wb.store.get_machine(host) or {}
        host = (machine.get("address") or host).rsplit("@", 1)[-1].rsplit(":", 1)[0]
    else:
        host = "127.0.0.1"
    return {**record, "endpoint": f"http://{host}:{record['port']}", "last_switch": switches[-1] if switches else None}


def show(wb: Services, name: str, check: bool = True) -> dict[str, Any]:
    record = _get(wb, name)
    if check:
        record = reconcile(wb, record)
    return {**_summary(wb, record), "targets": wb.store.targets(name), "events": wb.store.deployment_events(name)}


def logs(wb: Services, name: str, tail: int = 200) -> str:
    record = _get(wb, name)
    if not record["live_container"]:
        raise WorkbenchError(f"deployment {name} has no live version")
    container = serving.get(Target(wb, record["machine"]).client, record["live_container"])
    if container is None:
        raise WorkbenchError(f"the container of v{record['live_version']} is gone from {record['machine']}")
    return container.logs(tail=tail).decode(errors="replace")


def stop(wb: Services, name: str, remove: bool = False) -> dict[str, Any]:
    """Stops the proxy and the live version (kept, unless `remove`: then every container of it goes, and the
    record with them)."""
    _get(wb, name)  # an unknown name is said before anything else
    with _holding(wb, name):
        return _stop(wb, _get(wb, name), remove)


def _stop(wb: Services, record: dict[str, Any], remove: bool) -> dict[str, Any]:
    name = record["name"]
    target = Target(wb, record["machine"])
    names = [serving.proxy_name(wb.store.instance, name)] + [t["container"] for t in wb.store.targets(name)]
    for container_name in names:
        found = serving.get(target.client, container_name)
        if found is None:
            continue
        if remove:
            found.remove(force=True)
        elif found.status == "running":
            serving.stop_keep(found)
    if remove:
        wb.store.remove_deployment(name)  # its events stay: the history of what served there
        wb.store.add_deployment_event(name, "removed", f"{name}: removed from {record['machine']}:{record['port']}",
                                      from_version=record["live_version"])
        wb.progress(f"deployment {name} removed from {record['machine']}")
        return {**record, "status": "removed"}
    if record["live_container"]:
        wb.store.set_target_state(name, record["live_container"], "standby")
    wb.store.update_deployment(name, status="stopped", live_container=None, health=None)
    _event(wb, name, "stop", f"{name}: stopped (v{record['live_version']} kept; `workbench deploy` starts it again)",
           from_version=record["live_version"])
    return _get(wb, name)
