"""Comparing runs side by side: the params that differ, each metric's last and best value with the best run
marked, the checks verdicts, and each metric's downsampled curve per run, for overlaid charts."""

from __future__ import annotations

import math
from typing import Any

from workbench.errors import WorkbenchError
from workbench.services.context import Services

MAX_RUNS = 12
SIGNIFICANT = 5  # digits of a metric's largest value that `figures` shows
READABLE = 3  # the fewest significant digits a value may be left with by a column's shared decimals
LOWER_IS_BETTER = ("loss", "err", "error", "mse", "mae", "rmse", "perplexity", "ppl", "wer", "cer", "time",
                   "latency")


def better_is_lower(metric: str, checks: list[dict[str, Any]]) -> bool:
    """Which way is better: a check on the metric says (`< x`: lower); else its name (loss, error, …)."""
    for check in checks:
        if check["metric"] == metric:
            expression = check["expression"].split()
            op = next((part for part in expression if part in ("<", "<=", ">", ">=")), None)
            if op:
                return op.startswith("<")
    words = metric.lower().replace("-", "_").replace("/", "_").split("_")
    return any(word in LOWER_IS_BETTER for word in words)


def figures(values: list[float | None], significant: int = SIGNIFICANT) -> list[str]:
    """One metric's numbers (every run's last and best) in one precision, for a table: the same decimals
    for all, as many as `significant` digits of the largest magnitude need (0.9500 0.9512 1.0000, not
    0.95 0.9512 1); integers when every value is one; scientific notation with `significant` digits when
    every value is below 0.001. When those shared decimals would leave a value fewer than `READABLE`
    significant digits (one diverged run at 10000 beside losses of 0.0123 and 0.0150, which would all read
    0), each value gets its own `significant` digits instead. None (no value) is "-"."""
    present = [v for v in values if v is not None]
    if not present:
        return ["-" for _ in values]
    largest = max(abs(v) for v in present)
    if all(float(v).is_integer() for v in present):
        spec = ".0f"
    elif largest < 1e-3:
        spec = f".{significant - 1}e"
    else:
        decimals = max(0, significant - 1 - math.floor(math.log10(largest)))
        spec = f".{decimals}f"
        if any(v and math.floor(math.log10(abs(v))) + 1 + decimals < READABLE for v in present):
            spec = f".{significant}g"
    return ["-" if v is None else format(v, spec) for v in values]


def last_and_best(metric: Any) -> tuple[list[str], list[str]]:
    """A compared metric's (the facade's `ComparedMetric`: every run's last, every run's best) as `figures`
    shows them: one precision for both rows, so the CLI's table and the app's show the same digits."""
    runs = metric.runs
    shown = figures([r.last for r in runs] + [r.best for r in runs])
    return shown[:len(runs)], shown[len(runs):]


def lead_metrics(wb: Services, runs: list[tuple[str, str | None]]) -> dict[str, str]:
    """Run id -> the metric a list of runs is read by: a sweep's trial, its sweep's objective; any other run
    (or a sweep without one), its experiment's first check's metric (in its recorded workbench.toml's order).
    Runs with neither are left out. For `formatting.reading_order`; reads each sweep once and the checks of
    every run in one query. `runs`: (run id, sweep id or None) each."""
    objectives: dict[str, str | None] = {}
    for sweep in {sweep_id for _, sweep_id in runs if sweep_id}:
        objectives[sweep] = wb.store.get_sweep(sweep)["options"].get("objective")
    checked = wb.store.first_check_metrics([run_id for run_id, _ in runs])
    lead: dict[str, str] = {}
    for run_id, sweep_id in runs:
        if metric := objectives.get(sweep_id or "") or checked.get(run_id):
            lead[run_id] = metric
    return lead


def compare(wb: Services, refs: list[str], buckets: int = 120) -> dict[str, Any]:
    if len(refs) < 2:
        raise WorkbenchError("compare needs two runs or more", hint="workbench runs compare ID ID ...")
    runs = []
    for ref in refs:
        run = wb.store.get_run(ref)
        if any(r["id"] == run["id"] for r in runs):
            raise WorkbenchError(f"run {run['id']} is named twice")
        runs.append(run)
    if len(runs) > MAX_RUNS:
        raise WorkbenchError(f"compare takes at most {MAX_RUNS} runs (a chart stays readable)", hint="name fewer")
    checks = {run["id"]: wb.store.checks(run["seq"]) for run in runs}
    names = sorted({k for run in runs for k in run["params"]})
    differ = {n: [run["params"].get(n) for run in runs] for n in names
              if len({repr(run["params"].get(n)) for run in runs}) > 1}
    same = {n: runs[0]["params"].get(n) for n in names if n not in differ}
    metrics: dict[str, Any] = {}
    for metric in sorted({m for run in runs for m in wb.store.metric_names(run["seq"])}):
        lower = better_is_lower(metric, [c for cs in checks.values() for c in cs])
        per_run = []
        for run in runs:
            data = wb.store.metric_sampled(run["seq"], metric, buckets)
            best = data.get("min") if lower else data.get("max")
            per_run.append({"id": run["id"], "last": _finite(data.get("last")), "best": _finite(best),
                            "points": data.get("points", 0), "series": data.get("series", [])})
        scored = [r for r in per_run if r["best"] is not None]
        winner = (min if lower else max)(scored, key=lambda r: r["best"])["id"] if scored else None
        metrics[metric] = {"lower_is_better": lower, "best_run": winner, "runs": per_run}
    return {
        "runs": [{"id": r["id"], "project": r["project"], "experiment": r["experiment"], "status": r["status"],
                  "machine": r.get("machine"), "verdict": r.get("verdict"), "checks": checks[r["id"]]} for r in runs],
        "params_differ": differ, "params_same": same, "metrics": metrics,
    }


def _finite(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None
