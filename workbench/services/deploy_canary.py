"""Canary deployments: a new version gets a share of requests beside the live one, and the deployment
watcher (services/deploy_watch.py, a detached process on this workstation) judges it from the proxy's
own counters: it rolls back by itself as soon as the canary's error rate is over the threshold (with
enough requests to tell), and at the end of the window promotes it, or rolls it back if the rate is over.
The figures that decided are recorded with the verdict. The proxy keeps the split in its config, so a
restarted proxy, or a workstation asleep, holds the canary at its share until a watcher runs again."""

from __future__ import annotations

import time
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.serving import serving, traffic
from workbench.services.context import Services
from workbench.services.deploy_base import (Target, apply_plan, backend, counters_now, event, get_record,
                                            plan_for, quietly, read_counters, release, remove_container, retire, serve_only,
                                            try_hold)

MIN_REQUESTS = 20   # before its window ends, a canary is rolled back on errors only once this many reached it
ROLLBACK_DRAIN = 1.0  # requests the canary is answering finish before it is removed
NOTHING = traffic.Counters(0, 0, (), 0.0)  # a version no request reached yet


def start_canary(wb: Services, target: Target, record: dict[str, Any], container: Any, version: int, share: int,
                 window: float, max_error_rate: float, took: float) -> None:
    """`container` (ready) gets `share` percent of requests; the deployment watcher takes it from here (the
    caller makes sure one runs)."""
    name = record["name"]
    network = target.network(name)
    live = serving.get(target.client, record["live_container"])
    baseline = counters_now(wb, target, record)  # the counters its verdict is measured from
    apply_plan(wb, target, record, plan_for(wb, record, [backend(live, record["live_version"], network, 100 - share),
                                                         backend(container, version, network, share)]))
    now = time.time()
    wb.store.set_target_state(name, container.name, "canary")
    wb.store.update_deployment(name, operation=None, status="live", status_reason=None, canary={
        "version": version, "container": container.name, "share": share, "window": window, "started": now,
        "until": now + window, "max_error_rate": max_error_rate, "baseline": baseline, "watched_at": now})
    event(wb, name, "canary", f"{name}: v{version} (ready after {took:.1f} s) gets {share}% of requests for "
          f"{window:g} s, v{record['live_version']} the rest; rolled back by itself above {max_error_rate:g}% errors",
          from_version=record["live_version"], to_version=version)


def _delta(servers: dict[str, traffic.Counters], baseline: dict[str, Any] | None, version: int) -> traffic.Counters:
    then = ((baseline or {}).get("servers") or {}).get(f"v{version}")
    now = servers.get(f"v{version}") or NOTHING
    return traffic.since(now, traffic.from_json(then) if then else None)


def describe(figures: dict[str, Any], version: int) -> str:
    if not figures or not figures.get("requests"):
        return f"v{version}: no requests"
    latency = (f", p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms"
               if figures.get("p50_ms") is not None else "")  # none answered: every request was the proxy's 5xx
    return f"v{version}: {figures['requests']:,} requests, {figures['error_pct']:.1f}% errors{latency}"


def _figures(servers: dict[str, traffic.Counters], c: dict[str, Any], live_version: int) -> str:
    elapsed = max(time.time() - c["started"], 0.001)
    return "; ".join(describe(traffic.figures(_delta(servers, c["baseline"], version), elapsed), version)
                     for version in (c["version"], live_version))


def judge(wb: Services, target: Target, record: dict[str, Any], servers: dict[str, traffic.Counters],
          health_of: Callable[[str], tuple[str, str]]) -> bool:
    """The watcher's look at a canary: whether a verdict was carried out (False while it goes on, or while
    another Workbench holds the deployment)."""
    c = record["canary"]
    canary = traffic.figures(_delta(servers, c["baseline"], c["version"]), max(time.time() - c["started"], 0.001))
    said = _figures(servers, c, record["live_version"])
    health, failed = health_of(c["container"])
    over = canary["requests"] and canary["error_pct"] > c["max_error_rate"]
    if health != "ok":
        why = f"its health check failed{failed}"
    elif over and canary["requests"] >= MIN_REQUESTS:
        why = f"errors over {c['max_error_rate']:g}%"
    elif time.time() >= c["until"]:
        if not over:
            why = "its window passed" + (" (no request reached it: judged on health and smoke only)"
                                         if not canary["requests"] else f" within {c['max_error_rate']:g}% errors")
            return end_canary(wb, target, record, promote=True, why=why, figures=said, decided_on=c["container"])
        why = f"errors over {c['max_error_rate']:g}% at the end of its window"
    else:
        return False
    return end_canary(wb, target, record, promote=False, why=why, figures=said, decided_on=c["container"])


def end_canary(wb: Services, target: Target, record: dict[str, Any], *, promote: bool, why: str,
               figures: str | None = None, keeper: Any = None, decided_on: str | None = None) -> bool:
    """Promotes the canary (every request to it; the old live version retired and kept) or rolls it back
    (every request to the live version; the canary removed). Takes the deployment's lease unless the
    caller holds it (`keeper`). Returns whether it did: False when another Workbench holds it (the watcher
    tries again), or when there is no canary, or not the one `decided_on` names (ended, or replaced,
    meanwhile)."""
    name = record["name"]
    held = None
    if keeper is None:
        held = try_hold(wb, name)
        if held is None:
            return False
    try:
        record = get_record(wb, name)
        c = record.get("canary")
        if not c or (decided_on is not None and c["container"] != decided_on):
            return False
        if figures is None:
            try:
                figures = _figures(read_counters(wb, target, record), c, record["live_version"])
            except Exception:  # noqa: BLE001 - the verdict stands without its figures
                figures = "figures unavailable (the proxy did not answer)"
        elapsed = time.time() - c["started"]
        if promote:
            staged = serving.get(target.client, c["container"])
            if staged is None:
                raise WorkbenchError(f"the canary's container (v{c['version']}) is gone from {record['machine']}",
                                     hint=f"end it: `workbench deployments rollback {name}`")
            serve_only(wb, target, record, staged, c["version"])
            wb.store.set_target_state(name, c["container"], "live")
            wb.store.update_deployment(name, live_version=c["version"], live_container=c["container"], canary=None,
                                       status="live", status_reason=None, health="ok", health_at=time.time(),
                                       traffic_baseline=counters_now(wb, target, record))
            event(wb, name, "canary-promoted", f"{name}: v{c['version']} promoted after {elapsed:.0f} s ({why}): "
                  f"{figures}", from_version=record["live_version"], to_version=c["version"], health="ok")
            retire(wb, target, name, record["live_container"])
            return True
        live = serving.get(target.client, record["live_container"]) if record["live_container"] else None
        if live is None:
            raise WorkbenchError(f"the live version's container (v{record['live_version']}) is gone from "
                                 f"{record['machine']}: the canary keeps its share",
                                 hint=f"promote it (`workbench deployments promote {name}`) or deploy again")
        serve_only(wb, target, record, live, record["live_version"])
        wb.store.update_deployment(name, canary=None, status="live")
        event(wb, name, "canary-rolled-back", f"{name}: canary v{c['version']} rolled back after {elapsed:.0f} s "
              f"({why}): {figures}; v{record['live_version']} serves every request",
              from_version=c["version"], to_version=record["live_version"], health="failing")
        time.sleep(ROLLBACK_DRAIN)
        quietly(remove_container, target.client, c["container"])
        wb.store.set_target_state(name, c["container"], "failed")
        return True
    finally:
        if held is not None:
            release(wb, name, *held)
