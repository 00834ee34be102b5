"""Making a deployment's record tell the truth about its machine: an operation whose owner is gone (killed
mid-deploy) is settled on the version the proxy serves and the container it was starting is removed; a
proxy that is gone or stopped is brought back with the recorded plan (the live version, and a canary's
share); a version whose container moved (a restart gives it a new address) is re-pointed; and the live
version's health asked (the same request the proxy's active health check makes)."""

from __future__ import annotations

import time
from typing import Any

from workbench.errors import WorkbenchError
from workbench.serving import proxy, serving
from workbench.services.context import Services
from workbench.services.deploy_base import (LEASE_RENEW, LEASE_TTL, Target, apply_plan, backend, get_record,
                                            lease, plan_for, remove_container)
from workbench.store.leases import LeaseKeeper, new_owner


def reconcile(wb: Services, record: dict[str, Any], quiet: bool = False, owner: str | None = None) -> dict[str, Any]:
    """The record, made true (see the module's doc). With `quiet` False an unreachable machine is said and
    nothing changes. Called without `owner`, it takes the deployment's lease for its changes (and leaves a
    deployment that another Workbench is changing as its record says)."""
    name = record["name"]
    mine = owner or new_owner()
    if not wb.store.acquire_lease(lease(name), mine, LEASE_TTL):
        return record  # another Workbench is at work on it now
    keeper = LeaseKeeper(wb.store, lease(name), mine, LEASE_TTL, LEASE_RENEW) if owner is None else None
    current = wb.store.get_deployment(name)  # as it is now: an operation may have ended meanwhile
    try:
        if current is None:  # removed meanwhile (`stop --remove`): bringing its network or proxy back would leak them
            return record
        record = current
        return _reconcile(wb, record)
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


def expected_plan(wb: Services, target: Target, record: dict[str, Any]) -> proxy.Plan | None:
    """What the proxy should serve by the record: the live version (its share of a canary) and the canary;
    None when the live version has no address to send to (gone, or crash-looping)."""
    name = record["name"]
    network = target.network(name)
    live = serving.get(target.client, record["live_container"]) if record["live_container"] else None
    if live is None or not serving.address(live):
        return None
    canary = record.get("canary")
    staged = serving.get(target.client, canary["container"]) if canary else None
    if canary and staged is not None and serving.address(staged):
        return plan_for(wb, record, [backend(live, record["live_version"], network, 100 - canary["share"]),
                                     backend(staged, canary["version"], network, canary["share"])])
    return plan_for(wb, record, [backend(live, record["live_version"], network, 100)])


def _reconcile(wb: Services, record: dict[str, Any]) -> dict[str, Any]:
    name = record["name"]
    target = Target(wb, record["machine"])
    proxy_container = target.proxy(name)
    serves = proxy.read_plan(proxy_container)
    settled = bool(record.get("operation"))
    if settled:
        # the version the proxy serves besides a canary it was being given (by weight, a canary over 50%
        # would look like the stable one): the recorded live one when the proxy still has it
        names = [b.container for b in serves.backends] if serves else []
        stable = serves.stable() if serves else None
        keep = record["live_container"] if record["live_container"] in names or not stable else stable.container
        record = _settle(wb, target, record, keep)
    if record["live_container"] and record["status"] == "live":
        live = serving.get(target.client, record["live_container"])
        if live is not None and live.status in ("exited", "created"):
            serving.start_again(live)  # stopped by hand, or its engine restarted without it
        plan = expected_plan(wb, target, record)
        if plan is None:
            pass  # gone, or crash-looping with no address: nothing to point the proxy at; its health says so
        elif proxy_container is None or proxy_container.status != "running":
            apply_plan(wb, target, record, plan)
            what = "gone" if proxy_container is None else proxy_container.status
            wb.store.add_deployment_event(name, "proxy-restarted", f"{name}: the proxy was {what}; started "
                                          f"again on port {record['port']}")
        elif settled or serves != plan:
            # a restart gave a version a new address; or an interrupted switch, where Caddy may have taken a
            # config its files do not show yet: the recorded plan either way
            proxy.apply(proxy_container, plan)
        _check_health(wb, target, record, live)
    return get_record(wb, name)


def _settle(wb: Services, target: Target, record: dict[str, Any], serving_name: str | None) -> dict[str, Any]:
    """An operation left behind by a Workbench that stopped half-way: the proxy's stable upstream decides,
    if it names a version that was not given up (removed, failed) and whose container is still there. A
    canary it was starting is given up (its share goes back to the live version)."""
    name, operation = record["name"], record["operation"]
    targets = wb.store.targets(name)
    canary = (record.get("canary") or {}).get("container")
    live = next((t for t in targets if t["container"] == serving_name and t["state"] not in ("removed", "failed")),
                None)
    if live is not None and serving.get(target.client, live["container"]) is None:
        live = None
    for t in targets:
        if t["state"] == "starting" and (live is None or t["container"] != live["container"]) \
                and t["container"] != canary:
            remove_container(target.client, t["container"])
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
    return get_record(wb, name)


def live_health(target: Target, live: Any) -> tuple[str, str]:
    """("ok" | "failing", why) for the live version: its health path asked directly, the same request the
    proxy's active check makes every 500 ms (Caddy 2.6's own gauge of it is refreshed only every 10 s)."""
    if live is None:
        return "failing", " (its container is gone)"
    where = serving.address(live)
    if not where:
        return "failing", " (not running)"
    status = target.probe(where, int(live.labels.get("workbench.port", "8000")), serving.health_path(live))
    return ("ok", "") if status == 200 else ("failing", f" (HTTP {status})" if status else " (no answer)")


def _check_health(wb: Services, target: Target, record: dict[str, Any], live: Any) -> None:
    health, why = live_health(target, live)
    if health == "ok" and record.get("health") == "errors":
        health = "errors"  # its health path answers, its callers get 5xx: the watcher says when that ends
    if wb.store.set_health(record["name"], health):
        wb.store.add_deployment_event(record["name"], "health", f"{record['name']}: v{record['live_version']} health "
                                      f"{health}{why}", to_version=record["live_version"], health=health)
