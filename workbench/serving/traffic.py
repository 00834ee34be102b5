"""Traffic figures from the proxy's Prometheus text (Caddy 2.6's per-server HTTP metrics; see proxy.py for
the servers): per server ("front", "v3") the requests, the errors and the latency histogram, and per
upstream whether Caddy's health checks hold it healthy. Pure: no I/O.

Caddy counts a request in `caddy_http_requests_total` when its handler returns; a response is observed
in `caddy_http_request_duration_seconds` with its status code, while a request its handler failed
(no healthy upstream, a refused dial: Caddy then answers 502/503 itself) is counted in
`caddy_http_request_errors_total` instead. So errors = 5xx responses + handler errors, and the latency
histogram holds the answered requests. Counters live as long as the proxy's process."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_LINE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
PREFIX = "caddy_http_"


@dataclass(frozen=True)
class Counters:
    requests: int
    errors: int
    buckets: tuple[tuple[float, int], ...]  # cumulative (upper bound in seconds, count), +Inf last
    latency_sum: float


@dataclass
class _Sums:
    requests: float = 0.0
    errors: float = 0.0
    latency_sum: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)

    def counters(self) -> Counters:
        return Counters(int(self.requests), int(self.errors),
                        tuple((le, int(n)) for le, n in sorted(self.buckets.items())), self.latency_sum)


def _samples(text: str):
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        found = _LINE.match(line)
        if not found:
            continue
        try:
            value = float(found["value"])
        except ValueError:
            continue
        yield found["name"], dict(_LABEL.findall(found["labels"] or "")), value


def parse(text: str) -> tuple[dict[str, Counters], dict[str, bool]]:
    """({server: its counters}, {upstream "address:port": healthy}) from a metrics page."""
    servers: dict[str, _Sums] = {}
    healthy: dict[str, bool] = {}
    for name, labels, value in _samples(text):
        if name == "caddy_reverse_proxy_upstreams_healthy" and "upstream" in labels:
            healthy[labels["upstream"]] = value >= 1
            continue
        if not name.startswith(PREFIX) or "server" not in labels:
            continue
        sums = servers.setdefault(labels["server"], _Sums())
        metric = name[len(PREFIX):]
        if metric == "requests_total":
            sums.requests += value
        elif metric == "request_errors_total":
            sums.errors += value
        elif metric == "request_duration_seconds_count" and labels.get("code", "").startswith("5"):
            sums.errors += value
        elif metric == "request_duration_seconds_sum":
            sums.latency_sum += value
        elif metric == "request_duration_seconds_bucket" and "le" in labels:
            bound = float(labels["le"])  # "+Inf" parses as inf
            sums.buckets[bound] = sums.buckets.get(bound, 0.0) + value
    return {server: sums.counters() for server, sums in servers.items()}, healthy


def since(now: Counters, then: Counters | None) -> Counters:
    """What was counted after `then` (None: since the proxy started). Counters only grow while the proxy
    runs: fewer now means it restarted since, and everything now was counted after `then`."""
    if then is None or now.requests < then.requests or now.errors < then.errors:
        return now
    before = dict(then.buckets)
    if any(count < before.get(le, 0) for le, count in now.buckets):
        return now
    return Counters(now.requests - then.requests, now.errors - then.errors,
                    tuple((le, count - before.get(le, 0)) for le, count in now.buckets),
                    max(0.0, now.latency_sum - then.latency_sum))


def quantile(buckets: tuple[tuple[float, int], ...], q: float) -> float | None:
    """The q-quantile in seconds, interpolated linearly within its bucket (as Prometheus'
    histogram_quantile does; in the +Inf bucket: the largest finite bound). None without observations."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0
    for bound, count in buckets:
        if count >= rank and count > below:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def figures(delta: Counters, seconds: float | None) -> dict[str, Any]:
    """{"requests", "rps" (None without a duration), "errors", "error_pct", "p50_ms", "p99_ms"}; the
    percentages and latencies are None when there were no requests (or no answered ones)."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)
    requests = delta.requests
    return {"requests": requests,
            "rps": round(requests / seconds, 2) if seconds and seconds > 0 else None,
            "errors": delta.errors,
            "error_pct": round(100.0 * delta.errors / requests, 2) if requests else None,
            "p50_ms": ms(quantile(delta.buckets, 0.5)) if requests else None,
            "p99_ms": ms(quantile(delta.buckets, 0.99)) if requests else None}


def to_json(counters: Counters) -> dict[str, Any]:
    return {"requests": counters.requests, "errors": counters.errors, "latency_sum": counters.latency_sum,
            # JSON has no infinity: the +Inf bound is written as null
            "buckets": [[None if le == float("inf") else le, n] for le, n in counters.buckets]}


def snapshot(servers: dict[str, Counters], ts: float) -> dict[str, Any]:
    """Every server's counters at `ts`, as stored (a switch's baseline, the watcher's samples)."""
    return {"ts": ts, "servers": {server: to_json(c) for server, c in servers.items()}}


def from_json(data: dict[str, Any]) -> Counters:
    return Counters(int(data["requests"]), int(data["errors"]),
                    tuple((float("inf") if le is None else float(le), int(n)) for le, n in data["buckets"]),
                    float(data["latency_sum"]))
