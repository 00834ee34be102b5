"""Metric lines (DESIGN.md "Inside a run"): `{"step": 3, "loss": 0.41}`; each key/value is one point.
`step` missing → the line's ordinal; `ts` optional; NaN and ±inf kept; anything else skipped and counted."""

from __future__ import annotations

import json
import math
from typing import Any

from workbench.jsonsafe import finite_or_name
from workbench.store.ingest import MetricBatch

_loads = json.loads


def parse_metric_lines(data: bytes, first_ordinal: int, now: float) -> tuple[MetricBatch, int]:
    """Parses whole lines; returns the batch and how many lines it consumed."""
    rows: list[tuple[str, int, float, float | None]] = []
    append = rows.append
    summary: dict[str, Any] = {}
    bad_lines = bad_values = 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for ordinal, raw in enumerate(lines, start=first_ordinal):
        if not raw.strip():
            continue
        try:
            record = _loads(raw)
        except ValueError:
            bad_lines += 1
            continue
        if not isinstance(record, dict):
            bad_lines += 1
            continue
        step = record.pop("step", ordinal)
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        if not isinstance(step, int) or isinstance(step, bool):
            step = ordinal
        ts = record.pop("ts", now)
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
            ts = now
        for key, value in record.items():
            if value.__class__ is float or (value.__class__ is int):
                v = float(value)
                append((key, step, ts, None if v != v else v))  # NaN is stored as NULL
                summary[key] = v
            else:
                bad_values += 1
    return MetricBatch(rows, bad_lines, bad_values, _json_safe(summary)), len(lines)


def _json_safe(summary: dict[str, float]) -> dict[str, Any]:
    """Last values for the run summary; NaN/inf become strings JSON can hold."""
    return {k: finite_or_name(v) for k, v in summary.items()}
