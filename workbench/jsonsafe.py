"""Strict JSON for scripts: non-finite floats become the strings "NaN", "Infinity" and "-Infinity"."""

from __future__ import annotations

import math
from typing import Any


def finite_or_name(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def json_safe(data: Any) -> Any:
    if isinstance(data, float):
        return finite_or_name(data)
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data
