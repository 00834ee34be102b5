"""traffic.py on a metrics page captured from the real proxy (tests/fixtures/caddy_metrics.txt, see the
fixtures' README): per-server counts and errors, the health of each upstream, deltas across a restart and
the figures `deployments show` prints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from workbench.serving import traffic
from workbench.serving.traffic import Counters

PAGE = (Path(__file__).parents[1] / "fixtures" / "caddy_metrics.txt").read_text()


def test_the_captured_page_gives_each_server_its_requests_and_errors():
    servers, healthy = traffic.parse(PAGE)
    assert set(servers) == {"front", "v1", "v2"}  # the metrics server itself is not counted
    # front: 230 proxied + 6 refused without the token; errors: 10 answered 500 + 2 answered 502 (v2 stopped)
    assert (servers["front"].requests, servers["front"].errors) == (236, 12)
    assert (servers["v1"].requests, servers["v1"].errors) == (207, 9)
    # v2: 1 answered 500, 2 failed in Caddy itself (its container was stopped: request_errors_total)
    assert (servers["v2"].requests, servers["v2"].errors) == (23, 3)
    assert healthy == {"unix//tmp/workbench-v1.sock": True, "unix//tmp/workbench-v2.sock": True,
                       "172.19.0.2:8000": True, "172.19.0.3:8000": False}
    # the histogram holds the answered requests only, cumulative, +Inf last
    assert servers["v2"].buckets[0] == (0.005, 21) and servers["v2"].buckets[-1] == (math.inf, 21)
    assert [count for _, count in servers["v1"].buckets] == sorted(count for _, count in servers["v1"].buckets)


def test_figures_interpolate_quantiles_within_buckets():
    servers, _ = traffic.parse(PAGE)
    shown = traffic.figures(servers["v2"], 23.0)
    assert shown["requests"] == 23 and shown["rps"] == 1.0 and shown["errors"] == 3
    assert shown["error_pct"] == round(300 / 23, 2)
    # 21 answered, all within (0, 5 ms]: rank 10.5 -> 2.5 ms, rank 20.79 -> 4.95 ms (shown to 0.1 ms)
    assert shown["p50_ms"] == pytest.approx(2.5, abs=0.051) and shown["p99_ms"] == pytest.approx(4.95, abs=0.051)
    assert traffic.figures(servers["v2"], None)["rps"] is None


def test_no_requests_gives_no_percentages_or_latencies():
    empty = Counters(0, 0, ((0.005, 0), (math.inf, 0)), 0.0)
    assert traffic.figures(empty, 60.0) == {"requests": 0, "rps": 0.0, "errors": 0, "error_pct": None,
                                            "p50_ms": None, "p99_ms": None}
    assert traffic.parse("") == ({}, {})
    assert traffic.parse("not metrics at all\n{{{\ncaddy_http_requests_total{server=\"front\"} x\n") == ({}, {})


def test_since_subtracts_and_a_restart_counts_from_zero():
    then = Counters(10, 1, ((0.005, 8), (0.01, 9), (math.inf, 9)), 0.05)
    now = Counters(30, 4, ((0.005, 20), (0.01, 24), (math.inf, 26)), 0.15)
    delta = traffic.since(now, then)
    assert delta == Counters(20, 3, ((0.005, 12), (0.01, 15), (math.inf, 17)), delta.latency_sum)
    assert math.isclose(delta.latency_sum, 0.10)
    restarted = Counters(5, 0, ((0.005, 5), (0.01, 5), (math.inf, 5)), 0.01)  # fewer than before: a restart
    assert traffic.since(restarted, then) == restarted
    assert traffic.since(now, None) == now


def test_quantiles_interpolate_across_buckets_and_a_slow_tail_stops_at_the_largest_finite_bound():
    slow = Counters(100, 0, ((0.1, 50), (10.0, 98), (math.inf, 100)), 300.0)
    shown = traffic.figures(slow, None)
    assert shown["p50_ms"] == 100.0 and shown["p99_ms"] == 10000.0
    spread = Counters(20, 0, ((0.005, 10), (0.01, 20), (math.inf, 20)), 0.1)
    assert traffic.figures(spread, None)["p99_ms"] == pytest.approx(9.9, abs=0.051)  # rank 19.8 in (5, 10 ms]


def test_counters_round_trip_through_json():
    servers, _ = traffic.parse(PAGE)
    for counters in servers.values():
        stored = json.loads(json.dumps(traffic.to_json(counters)))  # as SQLite keeps it: no Infinity
        assert traffic.from_json(stored) == counters
