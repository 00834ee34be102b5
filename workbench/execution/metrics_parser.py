"""Metric lines (README, "Inside a run"): `{"step": 3, "loss": 0.41}`; each key/value is one point.
`step` missing → the line's ordinal; `ts` optional; NaN and ±inf kept; anything else skipped and counted."""

from __future__ import annotations

import json
import math
from typing import Any, Callable

from workbench.jsonsafe import finite_or_name
from workbench.store.ingest import MetricBatch

_loads = json.loads
_INF = math.inf
_MAX_STEP = 2**63


def parse_metric_lines(data: bytes, first_ordinal: int, now: float,
                       key_id: Callable[[str], int]) -> tuple[MetricBatch, int]:
    """Parses whole lines; returns the batch (rows of key id, step, ts, value) and how many lines it
    consumed. The hot loop of ingestion: type() identity checks, a dict lookup for the key id and one
    C-level dict update per line keep it near json.loads' own cost."""
    ids: dict[str, int] = {}
    rows: list[tuple[int, int, float, float | None]] = []
    append = rows.append
    latest: dict[str, Any] = {}
    update = latest.update
    bad_lines = bad_values = 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for ordinal, raw in enumerate(lines, start=first_ordinal):
        try:
            record = _loads(raw)
        except ValueError:
            if raw.strip():
                bad_lines += 1
            continue
        if type(record) is not dict:
            bad_lines += 1
            continue
        step = record.pop("step", ordinal)
        if type(step) is not int:
            step = int(step) if type(step) is float and step.is_integer() and abs(step) < _MAX_STEP else ordinal
        elif not -_MAX_STEP < step < _MAX_STEP:
            step = ordinal
        ts = record.pop("ts", now)
        if type(ts) is not float and type(ts) is not int or ts != ts or ts in (_INF, -_INF) or abs(ts) > 1e15:
            ts = now
        elif type(ts) is int:
            ts = float(ts)
        for key, value in record.items():
            kind = type(value)
            if kind is float or kind is int:
                kid = ids.get(key)
                if kid is None:
                    kid = ids[key] = key_id(key)
                if kind is int:
                    try:
                        value = float(value)  # SQLite integers stop at 2**63; a metric is a real number
                    except OverflowError:
                        bad_values += 1
                        continue
                append((kid, step, ts, value if value == value else None))  # NaN is stored as NULL
            else:
                bad_values += 1
        update(record)
    summary = {k: float(v) for k, v in latest.items() if type(v) is float or (type(v) is int and abs(v) < 2**1000)}
    return MetricBatch(rows, bad_lines, bad_values, _json_safe(summary)), len(lines)


def _json_safe(summary: dict[str, float]) -> dict[str, Any]:
    """Last values for the run summary; NaN/inf become strings JSON can hold."""
    return {k: finite_or_name(v) for k, v in summary.items()}
