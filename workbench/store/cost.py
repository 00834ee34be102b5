"""What a run cost: the same rule the store sums per project in SQL (Store.costs_by_project)."""

from __future__ import annotations

from typing import Any


def run_cost(run: dict[str, Any], now: float) -> float | None:
    """Its machine's hourly rate × how long it ran × the share of the machine it held (its GPUs of all the
    machine's; the whole machine for a CPU run). None where the machine has no rate."""
    rate, started = run.get("hourly_cost"), run.get("started_at")
    if rate is None or not started:
        return None if rate is None else 0.0
    share = run.get("gpu_share")
    return rate * max(0.0, (run.get("finished_at") or now) - started) / 3600 * (1.0 if share is None else share)
