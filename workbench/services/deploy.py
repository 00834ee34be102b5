"""Deployments: promote a registered model version to a served, health-checked and smoke-tested service on
a machine; switch to a new version blue/green (start beside, gate on health and the smoke request, switch
the proxy, drain, stop and keep the old) or as a canary (a share of requests, judged by the deployment
watcher: services/deploy_canary.py); roll back the same way, from the kept container or, after
--stop-first, from its image.

One operation at a time per deployment (a lease in the database, renewed while it works): a second
`deploy` of the same name waits a moment and says who holds it. The operation is recorded before the
machine is touched, so a deploy killed half-way is found by the next look (`deployments list|show`, the
app, the watcher) and reconciled to what the proxy serves (services/deploy_reconcile.py)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.projects.snapshot import snapshot_lock, take_snapshot
from workbench.projects.spec import load_spec, substitute
from workbench.registry.models import check_name
from workbench.serving import ports, proxy, serving
from workbench.services import models
from workbench.services.context import Services, first_line
from workbench.services.deploy_base import (Target, check_lease, counters_now, engine_errors, event, get_record, hold,
                                            holding, quietly, release, remove_container, retire, serve_only,
                                            smoke_json, smoke_of, token, token_path, wait_ready)
from workbench.services.deploy_canary import end_canary, start_canary
from workbench.services.deploy_reconcile import reconcile
from workbench.services.deploy_traffic import traffic_of
from workbench.services.deploy_watch import canary_note, ensure_watcher
from workbench.services.images import image_for
from workbench.services.launch import pick_gpus

DEFAULT_PORT = 8080
ROLLBACK_TIMEOUT = 120.0  # the kept version loaded its model once already


def _spec_of(version: dict[str, Any]) -> Any:
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


def check_canary(share: int, window: float, max_error_rate: float) -> None:
    if not 1 <= share <= 99:
        raise WorkbenchError(f"--canary takes a share of requests from 1 to 99 (percent), not {share}")
    if not 1 <= window <= 24 * 3600:
        raise WorkbenchError(f"--canary-for takes 1 s to 24 h, not {window:g} s")
    if not 0 <= max_error_rate <= 100:
        raise WorkbenchError(f"--max-error-rate takes 0 to 100 (percent), not {max_error_rate:g}")


def deploy(wb: Services, ref: str, machine: str, *, port: int | None = None, name: str | None = None,
           stop_first: bool = False, bind: str | None = None, canary: int | None = None,
           canary_for: float = 60.0, max_error_rate: float = 1.0) -> dict[str, Any]:
    import docker.errors

    if port is not None:
        ports.check_port(port)
    if bind is not None:
        ports.check_bind(bind)
    if canary is not None:
        check_canary(canary, canary_for, max_error_rate)
    machine = wb.executors.machine(machine)
    version = models.resolve(wb, ref)
    model_file = models.model_file(wb, version)
    spec = _spec_of(version)
    name = check_name(name or version["name"], "deployment name")
    existing = wb.store.get_deployment(name)
    if existing and existing["machine"] != machine:
        raise WorkbenchError(f"deployment {name} lives on {existing['machine']}",
                             hint=f"stop it there first (`workbench deployments stop {name} --remove`), or pass --name")
    port = port or (existing["port"] if existing else DEFAULT_PORT)
    if bind is None and existing and existing["bind"] != spec.deploy.bind:
        wb.progress(f"{name} keeps listening on {existing['bind']} ([deploy] bind says {spec.deploy.bind}: to move "
                    f"it, pass --bind while nothing is live, or stop it with --remove and deploy again)")
    bind = bind or (existing["bind"] if existing else spec.deploy.bind)
    owner, keeper = hold(wb, name)
    label = f"{version['name']}:{version['version']}"
    state: dict[str, Any] = {"created": False, "container": None, "before": None}
    try:
        done = _deploy(wb, version, model_file, spec, name, machine, port, bind, stop_first, canary, canary_for,
                       max_error_rate, owner, keeper, state)
        _watched(wb)
        return done
    except BaseException as exc:
        current = wb.store.get_deployment(name)
        container_name = state["container"]
        settled = True
        if container_name and current and current["live_container"] != container_name \
                and not (current.get("canary") or {}).get("container") == container_name:
            # False: the machine did not answer; the operation stays recorded, for the next look to settle
            settled = _discard(wb, machine, name, container_name, current["live_container"])
        if settled and state["created"] and current and current["live_version"] is None:
            _forget(wb, machine, name)  # refused before it ever served: nothing to record
        elif settled and current and current.get("operation") and current["operation"].get("owner") == owner:
            _settle_refused(wb, name, current, state["before"],
                            f"{label}: {getattr(exc, 'message', None) or first_line(exc)}")
        if isinstance(exc, docker.errors.DockerException):
            said = str(getattr(exc, "explanation", None) or first_line(exc)).strip().splitlines()
            raise WorkbenchError(f"{label} not deployed: the engine on {machine} said: "
                                 f"{said[0][:300] if said else type(exc).__name__}") from None
        raise
    finally:
        release(wb, name, owner, keeper)


def _forget(wb: Services, machine: str, name: str) -> None:
    """A first deploy refused before its version served: the record, its events, and what it made on the
    machine (its network, a proxy that never served, a token) go; `deployments list` never shows it."""
    try:
        target = Target(wb, machine)
        quietly(remove_container, target.client, serving.proxy_name(wb.store.instance, name))
        serving.remove_network(target.client, wb.store.instance, name)
    except Exception:  # noqa: BLE001 - the machine went away: `gc` finds what is labelled and unrecorded
        pass
    token_path(wb, name).unlink(missing_ok=True)
    wb.store.forget_deployment(name)


def _settle_refused(wb: Services, name: str, current: dict[str, Any], before: dict[str, Any] | None,
                    reason: str) -> None:
    """A refused deploy of an existing deployment leaves it as it was (its status, reason and endpoint: a
    `--port` or `--bind` that moved it while nothing was live is undone), unless what serves changed
    meanwhile (--stop-first stopped the live version): then it says so."""
    if before is not None and current["live_container"] == before["live_container"]:
        if (current["port"], current["bind"]) != (before["port"], before["bind"]):
            try:  # a proxy it got as far as starting on the new endpoint would serve where the record does not say
                quietly(remove_container, Target(wb, current["machine"]).client,
                        serving.proxy_name(wb.store.instance, name))
            except Exception:  # noqa: BLE001 - the machine went away: the next deploy's port check finds it
                pass
        wb.store.update_deployment(name, operation=None, status=before["status"],
                                   status_reason=before["status_reason"], port=before["port"], bind=before["bind"])
    else:
        wb.store.update_deployment(name, operation=None, status="live" if current["live_container"] else "failed",
                                   status_reason=reason)


def _deploy(wb: Services, version: dict[str, Any], model_file: Path, spec: Any, name: str, machine: str, port: int,
            bind: str, stop_first: bool, canary: int | None, canary_for: float, max_error_rate: float, owner: str,
            keeper: Any, state: dict[str, Any]) -> dict[str, Any]:
    d = spec.deploy
    label = f"{version['name']}:{version['version']}"
    target = Target(wb, machine)
    record = wb.store.get_deployment(name)
    if record is not None:
        record = reconcile(wb, record, quiet=True, owner=owner)
        if record.get("canary"):
            c = record["canary"]
            raise WorkbenchError(f"deployment {name} has a canary of v{c['version']} under way (until "
                                 f"{time.strftime('%H:%M:%S', time.localtime(c['until']))})",
                                 hint=f"wait for its verdict, or end it: `workbench deployments promote {name}` or "
                                      f"`workbench deployments rollback {name}`")
    live = record["live_container"] if record else None
    if canary is not None and not live:
        raise WorkbenchError(f"deployment {name} has no live version to compare a canary with",
                             hint="deploy without --canary first")
    if canary is not None and record["live_version"] == version["version"]:
        raise WorkbenchError(f"v{version['version']} is already live on {name}: a canary compares another version "
                             "with it")
    moving = record is not None and (port != record["port"] or bind != record["bind"])
    if moving and live:
        raise WorkbenchError(f"deployment {name} serves on {record['bind']}:{record['port']}",
                             hint="its endpoint stays; to move it, stop it with --remove and deploy again")
    proxy_container = target.proxy(name) if record else None
    if moving or proxy_container is None or proxy_container.status != "running":
        held = target.holder_of(bind, port)
        if held:
            raise WorkbenchError(f"port {port} is in use on {machine} ({held})", hint="pick another with --port")
    state["before"] = record
    if record is None:
        wb.store.create_deployment(name, version["name"], machine, port, bind, d.auth)
        state["created"] = True
    elif moving:
        if proxy_container is not None:  # nothing serves on the old endpoint: it moves
            proxy_container.remove(force=True)
        wb.store.update_deployment(name, port=port, bind=bind)
    record = get_record(wb, name)
    wb.store.update_deployment(name, operation={"kind": "canary" if canary else "deploy",
                                                "version": version["version"], "owner": owner,
                                                "started": time.time()},
                               status=record["status"] if live else "deploying")
    # held until the target (and its snapshot) is recorded: gc keeps what a record names
    with snapshot_lock(wb.dirs.snapshots, exclusive=False):
        snapshot = take_snapshot(spec.root, spec.exclude, wb.dirs.snapshots)
        code = target.code_dir(snapshot.hash)
        model_path = target.model_path(model_file, version["sha256"],
                                       lambda why: event(wb, name, "model-replaced", why))
        experiment = (spec.experiments.get(version["lineage"]["experiment"])
                      or next(iter(spec.experiments.values())))
        image = image_for(wb, spec, replace(experiment, image=d.image, dockerfile=d.dockerfile),
                          wb.dirs.snapshots / snapshot.hash, snapshot.hash, None, machine=machine)
        target.ensure_image(proxy.IMAGE)
        gpu_ids = _gpus_for(wb, target, record, d.gpus, stop_first, label, canary is not None)
        live = record["live_container"]  # None once --stop-first removed it
        container_name = serving.target_name(name, version["version"])
        launch = {"image": image, "command": substitute(d.command, {"model": f"{serving.MODEL_DIR}/{version['filename']}",
                                                                   "port": d.port}),
                  "env": d.env, "snapshot": snapshot.hash, "model_file": version["filename"], "port": d.port,
                  "health": d.health, "timeout": d.timeout, "gpus": d.gpus, "memory": d.memory,
                  "read_only": d.read_only, "smoke": smoke_json(d.smoke)}
        check_lease(keeper, name)
        try:
            wb.store.add_target(name, container_name, version["version"], version["sha256"], "starting",
                                snapshot=snapshot.hash, machine=machine, gpu_uuids=gpu_ids, launch=launch)
        except sqlite3.IntegrityError:
            raise WorkbenchError(f"the GPU(s) picked on {machine} were taken by another run meanwhile",
                                 hint="deploy again: it picks among those still free") from None
        state["container"] = container_name
    wb.progress(f"starting {label} on {machine} ({container_name})")
    container = start_version(wb, target, name, container_name, version["version"], launch, code, model_path, gpu_ids)
    try:
        took = wait_ready(wb, target, container, d.timeout, d.smoke)
    except WorkbenchError as exc:
        container.remove(force=True)
        wb.store.set_target_state(name, container_name, "failed")
        keeps = f"; v{record['live_version']} keeps serving" if live else ""
        wb.store.add_deployment_event(name, "deploy-failed", f"{label} not deployed: {exc.message}{keeps}",
                                      from_version=record["live_version"], to_version=version["version"],
                                      health="failing")  # said once, by the error below; the record: deploy's
        raise WorkbenchError(f"{label} not deployed: {exc.message}{keeps}") from None
    check_lease(keeper, name)
    _take_auth(wb, record, d.auth)  # the endpoint asks for a token (or stops asking) from this switch on
    if canary is not None:
        start_canary(wb, target, record, container, version["version"], canary, canary_for, max_error_rate, took)
        _watched(wb)
        return show(wb, name, check=False)
    serve_only(wb, target, record, container, version["version"])
    wb.store.set_target_state(name, container_name, "live")
    wb.store.update_deployment(name, live_version=version["version"], live_container=container_name,
                               proxy=serving.proxy_name(wb.store.instance, name), status="live",
                               status_reason=None, health="ok", health_at=time.time(), operation=None,
                               traffic_baseline=counters_now(wb, target, record))
    verb = f"switched v{record['live_version']} → v{version['version']}" if live else f"v{version['version']} live"
    event(wb, name, "switch" if live else "deploy", f"{name}: {verb} on {machine}:{record['port']} (ready after "
          f"{took:.1f} s)", from_version=record["live_version"], to_version=version["version"], health="ok")
    if live and live != container_name:
        _retire_after_switch(wb, target, name, live, f"v{version['version']}")
    return show(wb, name, check=False)


def _retire_after_switch(wb: Services, target: Target, name: str, old: str, now_live: str) -> None:
    """The version switched away from, stopped and kept; its failure is said, never taken for the switch's."""
    try:
        retire(wb, target, name, old)
    except Exception as exc:  # noqa: BLE001 - the switch is done: what failed is only the clean-up
        wb.progress(f"{name}: {now_live} is live, but the version before it could not be stopped: "
                    f"{getattr(exc, 'message', None) or first_line(exc)}")


def _take_auth(wb: Services, record: dict[str, Any], auth: str) -> None:
    """The deployment's `auth` as its project says now, written with the switch that applies it (a version
    refused by its gate changes nothing for the callers of the live one); the token is made here once."""
    name = record["name"]
    if auth == "token" and token(wb, name) is None:
        secret = token(wb, name, create=True)
        wb.progress(f"{name}: callers now need `Authorization: Bearer {secret}` (the token is shown this once; "
                    f"`workbench deployments token {name}` prints it again)")
    if record.get("auth") != auth:
        wb.store.update_deployment(name, auth=auth)
        record["auth"] = auth


def _watched(wb: Services) -> None:
    """A live deployment is watched from now on (health, traffic, canaries), with no command to run."""
    quietly(ensure_watcher, wb)


def start_version(wb: Services, target: Target, name: str, container_name: str, version: int,
                  launch: dict[str, Any], code: str, model_path: str, gpu_ids: list[str]) -> Any:
    """A serving container for `version` on the deployment's own network, as `launch` describes it."""
    return serving.start_target(
        target.client, name=container_name, image=launch["image"], command=launch["command"], env=launch["env"],
        code_dir=code, model_path=model_path, model_file=launch["model_file"], gpu_ids=gpu_ids,
        container_labels={**serving.labels(wb.store.instance, name, "serve", version),
                          "workbench.port": str(launch["port"]), "workbench.health": launch["health"]},
        network=target.network(name), memory=launch.get("memory"), read_only=launch.get("read_only", True),
        user=target.owner())


def _discard(wb: Services, machine: str, name: str, container_name: str, live_name: str | None) -> bool:
    """Removes a container that never served, the proxy kept on `live_name` (False when the machine does
    not answer)."""
    try:
        target = Target(wb, machine)
        proxy_container = target.proxy(name)
        plan = proxy.read_plan(proxy_container)
        if plan is not None and [b.container for b in plan.backends] == [container_name]:
            return False  # the switch happened before the failure: the next look records it as live
        live = serving.get(target.client, live_name) if live_name else None
        if live is not None and proxy_container is not None and proxy_container.status == "running" \
                and serving.address(live):
            # Caddy may have taken the new config before its files were written: back onto the live version
            record = get_record(wb, name)
            serve_only(wb, target, record, live, record["live_version"])
        remove_container(target.client, container_name)
    except Exception:  # noqa: BLE001 - the machine went away: the next reconcile settles it
        return False
    wb.store.set_target_state(name, container_name, "failed")
    return True


def _gpus_for(wb: Services, target: Target, record: dict[str, Any], count: int, stop_first: bool,
              label: str, canary: bool = False) -> list[str]:
    if not count:
        if stop_first and record["live_container"]:
            wb.progress(f"{record['name']}: --stop-first has nothing to free (the deployment holds no GPUs): "
                        "switching with both versions up")
        return []
    try:
        return [g.uuid for g in pick_gpus(wb, count, target.machine).gpus]
    except WorkbenchError as exc:
        live = record["live_container"]
        if not live:
            raise
        if canary:
            raise WorkbenchError(f"{target.machine} cannot hold both versions for a canary: {label} needs {count} "
                                 f"GPU(s) while v{record['live_version']} holds its own ({exc.message})") from None
        if not stop_first:
            raise WorkbenchError(f"{target.machine} cannot hold both versions: {label} needs {count} GPU(s) while "
                                 f"v{record['live_version']} holds its own ({exc.message})",
                                 hint="pass --stop-first to stop the live version before starting the new one "
                                      "(requests fail until it is healthy)") from None
    event(wb, record["name"], "stop-first", f"{record['name']}: stopping v{record['live_version']} first to free "
          "its GPUs (requests fail until the new version is ready)", from_version=record["live_version"])
    retire(wb, target, record["name"], record["live_container"], drain=False, release_gpus=True)
    wb.store.update_deployment(record["name"], live_container=None, status="deploying")
    record["live_container"] = None
    return [g.uuid for g in pick_gpus(wb, count, target.machine).gpus]


def rollback(wb: Services, name: str) -> dict[str, Any]:
    """Back to the version live before: its kept container started again, or (after --stop-first, or once
    that container is gone) a new one from its image; gated on health and smoke like a deploy. During a
    canary: the canary ends, the live version takes every request again."""
    record = get_record(wb, name)
    owner, keeper = hold(wb, name)
    fresh: dict[str, Any] = {}  # the container made from the image, while it is not live
    try:
        with engine_errors(record["machine"], f"{name}: rollback"):
            return _rollback(wb, name, owner, keeper, fresh)
    except BaseException as exc:
        current = wb.store.get_deployment(name)
        if fresh.get("name") and current and current["live_container"] != fresh["name"]:
            quietly(remove_container, fresh["target"].client, fresh["name"])
            wb.store.set_target_state(name, fresh["name"], "failed")  # its GPUs go back
        if current and current.get("operation") and current["operation"].get("owner") == owner:
            reason = getattr(exc, "message", None) or first_line(exc)
            wb.store.update_deployment(name, operation=None, status="live" if current["live_container"] else "failed",
                                       **({} if current["live_container"] else {"status_reason": reason}))
        raise
    finally:
        release(wb, name, owner, keeper)


def rollback_target(targets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The target a rollback brings back: of the versions kept (a standby, or one whose container is gone:
    made again from its image), the one live most recently; None when none is kept."""
    kept = [t for t in targets if t["state"] in ("standby", "standby-gone")]
    return max(kept, key=lambda t: t["state_at"]) if kept else None


def _rollback(wb: Services, name: str, owner: str, keeper: Any, fresh: dict[str, Any]) -> dict[str, Any]:
    record = reconcile(wb, get_record(wb, name), quiet=True, owner=owner)
    if record.get("canary"):
        end_canary(wb, Target(wb, record["machine"]), record, promote=False, why="rolled back by hand", keeper=keeper)
        return show(wb, name, check=False)
    back = rollback_target(wb.store.targets(name))
    if back is None:
        raise WorkbenchError(f"deployment {name} has no earlier version kept to go back to")
    target = Target(wb, record["machine"])
    kept = models.resolve(wb, f"{record['model']}:{back['version']}")
    # the kept container mounts the host's copy by path when it starts again: that copy must be the model
    model_path = target.model_path(models.model_file(wb, kept), back["sha256"],
                                   lambda why: event(wb, name, "model-replaced", why))
    wb.store.update_deployment(name, operation={"kind": "rollback", "version": back["version"], "owner": owner,
                                                "started": time.time()})
    started = time.monotonic()
    live_before = record["live_version"] if record["live_container"] else None
    container = _bring_back(wb, target, record, back, model_path, fresh)
    try:
        wait_ready(wb, target, container, ROLLBACK_TIMEOUT, smoke_of(back["launch"]))
        check_lease(keeper, name)
    except WorkbenchError as exc:
        if not fresh:
            quietly(serving.stop_keep, container)  # kept as it was, for another try
        message = f"{name}: rollback to v{back['version']} failed: {exc.message}" + (
            f"; v{live_before} keeps serving" if record["live_container"] else "")
        event(wb, name, "rollback-failed", message, from_version=record["live_version"],
              to_version=back["version"], health="failing")
        raise WorkbenchError(message) from None
    serve_only(wb, target, record, container, back["version"])
    wb.store.set_target_state(name, container.name, "live")
    if fresh:
        wb.store.set_target_state(name, back["container"], "removed")  # its image made the live one
        fresh.clear()
    previous = record["live_container"]
    wb.store.update_deployment(name, live_version=back["version"], live_container=container.name, status="live",
                               status_reason=None, health="ok", health_at=time.time(), operation=None,
                               traffic_baseline=counters_now(wb, target, record))
    how = " (from its image)" if container.name != back["container"] else ""
    event(wb, name, "rollback", f"{name}: rolled back v{record['live_version']} → v{back['version']}{how} in "
          f"{time.monotonic() - started:.1f} s", from_version=record["live_version"], to_version=back["version"],
          health="ok")
    if previous:
        _retire_after_switch(wb, target, name, previous, f"v{back['version']}")
    _watched(wb)
    return show(wb, name, check=False)


def promote(wb: Services, name: str) -> dict[str, Any]:
    """Ends the deployment's canary now, promoting it (the figures so far are recorded with it)."""
    record = get_record(wb, name)
    if not record.get("canary"):
        raise WorkbenchError(f"deployment {name} has no canary to promote",
                             hint=f"start one: `workbench deploy {record['model']}:VERSION --canary 10`")
    owner, keeper = hold(wb, name)
    try:
        record = get_record(wb, name)
        if not record.get("canary"):
            raise WorkbenchError(f"deployment {name}'s canary was decided meanwhile (see `workbench deployments "
                                 f"show {name}`)")
        with engine_errors(record["machine"], f"{name}: promote"):
            end_canary(wb, Target(wb, record["machine"]), record, promote=True, why="promoted by hand", keeper=keeper)
            return show(wb, name, check=False)
    finally:
        release(wb, name, owner, keeper)


def _bring_back(wb: Services, target: Target, record: dict[str, Any], back: dict[str, Any], model_path: str,
                fresh: dict[str, Any]) -> Any:
    """The earlier version's container, running: the kept one started again, else a new one from its image
    (named in `fresh` until it is live, so a failure removes it and the earlier target stays the way back)."""
    name = record["name"]
    container = serving.get(target.client, back["container"]) if back["state"] == "standby" else None
    if container is not None:
        serving.start_again(container)
        return container
    if back["state"] == "standby":
        wb.store.set_target_state(name, back["container"], "standby-gone")  # its container is gone: GPUs free
    launch = back["launch"]
    how_back = (f"deploy it again: `workbench deploy {record['model']}:{back['version']} --machine "
                f"{record['machine']}`")
    if not launch:
        wb.store.set_target_state(name, back["container"], "removed")
        raise WorkbenchError(f"the container of v{back['version']} is gone from {record['machine']}", hint=how_back)
    if not _image_there(target, launch["image"]):
        wb.store.set_target_state(name, back["container"], "removed")
        raise WorkbenchError(f"the image of v{back['version']} is gone from {record['machine']}", hint=how_back)
    label = f"{record['model']}:{back['version']}"
    gpu_ids = _gpus_for(wb, target, record, launch.get("gpus", 0), True, label)
    container_name = serving.target_name(name, back["version"])
    wb.store.add_target(name, container_name, back["version"], back["sha256"], "starting", snapshot=launch["snapshot"],
                        machine=record["machine"], gpu_uuids=gpu_ids, launch=launch)
    fresh.update(name=container_name, target=target)
    wb.progress(f"starting {label} again from its image on {record['machine']}")
    code = target.code_dir(launch["snapshot"])
    return start_version(wb, target, name, container_name, back["version"], launch, code, model_path, gpu_ids)


def _image_there(target: Target, image: str) -> bool:
    import docker.errors

    try:
        target.client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def deployments(wb: Services, check: bool = True) -> list[dict[str, Any]]:
    try:
        for note in ensure_watcher(wb):  # a canary held while no watcher ran: said here, at the next look
            wb.progress(note)
    except Exception:  # noqa: BLE001 - the list stands without a watcher; the next look tries again
        pass
    out = []
    for record in wb.store.deployments():
        out.append(_summary(wb, reconcile(wb, record) if check else record))
    return out


def _summary(wb: Services, record: dict[str, Any]) -> dict[str, Any]:
    """The record with its endpoint, last switch and `rollback_to` (the version `rollback` brings back, by
    `rollback_target`; None when none is kept), for `deployments list|show` and the app."""
    events = wb.store.deployment_events(record["name"], limit=50)
    switches = [e for e in events if e["kind"] in ("deploy", "switch", "rollback", "canary-promoted",
                                                    "canary-rolled-back")]
    host = record["machine"]
    if host != "local":
        machine = wb.store.get_machine(host) or {}
        host = (machine.get("address") or host).rsplit("@", 1)[-1].rsplit(":", 1)[0]
    bind = record.get("bind") or "0.0.0.0"
    if bind not in ("0.0.0.0", "::"):
        host = bind if record["machine"] == "local" or not bind.startswith("127.") else f"{bind} on {host}"
    elif record["machine"] == "local":
        host = "127.0.0.1"
    back = rollback_target(wb.store.targets(record["name"]))
    out = {**record, "endpoint": f"http://{host}:{record['port']}", "last_switch": switches[-1] if switches else None,
           "rollback_to": back["version"] if back else None}  # outside a canary: a canary's rollback ends it
    out.pop("traffic_baseline", None)  # the counters "since the switch" starts from: `show` gives the figures
    if record.get("canary"):
        out["canary"] = {k: v for k, v in record["canary"].items() if k != "baseline"}
        out["canary"]["note"] = canary_note(wb, record)
    return out


def show(wb: Services, name: str, check: bool = True, traffic: bool = True) -> dict[str, Any]:
    record = get_record(wb, name)
    if check:
        quietly(ensure_watcher, wb)
        record = reconcile(wb, record)
    out = {**_summary(wb, record), "targets": wb.store.targets(name), "events": wb.store.deployment_events(name)}
    if traffic:
        out["traffic"] = traffic_of(wb, get_record(wb, name))
    return out


def logs(wb: Services, name: str, tail: int = 200) -> str:
    record = get_record(wb, name)
    if not record["live_container"]:
        raise WorkbenchError(f"deployment {name} has no live version")
    with engine_errors(record["machine"], f"{name}: logs"):
        container = serving.get(Target(wb, record["machine"]).client, record["live_container"])
        if container is None:
            raise WorkbenchError(f"the container of v{record['live_version']} is gone from {record['machine']}")
        return container.logs(tail=tail).decode(errors="replace")


def endpoint_token(wb: Services, name: str) -> str:
    record = get_record(wb, name)
    secret = token(wb, name)
    if record.get("auth") != "token" or secret is None:
        raise WorkbenchError(f"deployment {name} asks callers for no token",
                             hint='set auth = "token" in its project\'s [deploy] table and deploy again')
    return secret


def stop(wb: Services, name: str, remove: bool = False) -> dict[str, Any]:
    """Stops the proxy and the live version (kept, unless `remove`: then every container of it goes, its
    network and token too, and the record with them)."""
    machine = get_record(wb, name)["machine"]  # an unknown name is said before anything else
    with holding(wb, name), engine_errors(machine, f"{name}: stop"):
        return _stop(wb, get_record(wb, name), remove)


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
    canary = record.get("canary")
    if remove:
        serving.remove_network(target.client, wb.store.instance, name)
        token_path(wb, name).unlink(missing_ok=True)
        wb.store.remove_deployment(name)  # its events stay: the history of what served there
        wb.store.add_deployment_event(name, "removed", f"{name}: removed from {record['machine']}:{record['port']}",
                                      from_version=record["live_version"])
        wb.progress(f"deployment {name} removed from {record['machine']}")
        return {**record, "status": "removed"}
    if canary:
        wb.store.set_target_state(name, canary["container"], "failed")
    if record["live_container"]:
        wb.store.set_target_state(name, record["live_container"], "standby")
    wb.store.update_deployment(name, status="stopped", live_container=None, health=None, canary=None)
    event(wb, name, "stop", f"{name}: stopped (v{record['live_version']} kept; `workbench deploy` starts it again)"
          + (f"; the canary of v{canary['version']} ended with it" if canary else ""),
          from_version=record["live_version"])
    return get_record(wb, name)
