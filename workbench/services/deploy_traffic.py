"""A deployment's traffic figures, read from its proxy's counters now (a request to the proxy's metrics
listener: milliseconds) against the counters at the last switch and the watcher's sample of about a
minute ago: requests/s, p50/p99 latency and error % per version."""

from __future__ import annotations

import time
from typing import Any

from workbench.serving import traffic
from workbench.services.context import Services, first_line
from workbench.services.deploy_base import Target, read_counters

MINUTE = 60.0


def _servers(counters: dict[str, Any] | None) -> dict[str, traffic.Counters]:
    return {s: traffic.from_json(c) for s, c in ((counters or {}).get("servers") or {}).items()}


def traffic_of(wb: Services, record: dict[str, Any]) -> dict[str, Any]:
    """{"versions": [{version, role, share, last_minute, since_switch}], "read_ms", "error"}; figures as
    traffic.figures gives them (None for a window with no sample)."""
    canary = record.get("canary")
    if not record.get("live_container"):
        return {"versions": [], "read_ms": None, "error": None}
    try:
        target = Target(wb, record["machine"])
        started = time.monotonic()  # the read itself: one HTTP request to the proxy's metrics listener
        servers = read_counters(wb, target, record)
    except Exception as exc:  # noqa: BLE001 - the figures are unknown, the rest of `show` stands
        return {"versions": [], "read_ms": None, "error": getattr(exc, "message", None) or first_line(exc)}
    read_ms = round((time.monotonic() - started) * 1000, 1)
    now = time.time()
    earlier = wb.store.traffic_sample_before(record["name"], now - MINUTE)
    if earlier is not None and now - earlier[0] > 3 * MINUTE:
        earlier = None  # no watcher sampled lately: no figure rather than a wrong one
    rows = [(record["live_version"], "live", 100 - canary["share"] if canary else 100,
             record.get("traffic_baseline"))]
    if canary:
        rows.append((canary["version"], "canary", canary["share"], canary.get("baseline")))
    versions = []
    for version, role, share, baseline in rows:
        server = f"v{version}"
        now_c = servers.get(server) or traffic.Counters(0, 0, (), 0.0)
        then = _servers(baseline).get(server)
        since_ts = (baseline or {}).get("ts")
        if earlier and since_ts and earlier[0] < since_ts:  # younger than a minute: counted since it began
            minute, minute_ts = then, since_ts
        else:
            minute, minute_ts = (_servers(earlier[1]).get(server), earlier[0]) if earlier else (None, None)
        versions.append({
            "version": version, "role": role, "share": share,
            "last_minute": traffic.figures(traffic.since(now_c, minute), now - minute_ts) if minute_ts else None,
            "since_switch": traffic.figures(traffic.since(now_c, then), now - since_ts if since_ts else None),
            "since": since_ts})
    return {"versions": versions, "read_ms": read_ms, "error": None}
