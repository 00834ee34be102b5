"""Metric checks: a fixed grammar, `[best|last] OP NUMBER` with OP in >=, >, <=, <, == (never eval)."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable, Iterable

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
_GRAMMAR = re.compile(
    r"^\s*(?:(best|last)\s+)?(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf)\s*$"
)


@dataclass(frozen=True)
class Check:
    metric: str
    op: str
    threshold: float
    on: str = "last"  # or "best": the max for > / >=, the min for < / <=

    @property
    def text(self) -> str:
        prefix = "best " if self.on == "best" else ""
        return f"{self.metric} {prefix}{self.op} {self.threshold:g}"

    def value_of(self, values: Iterable[float]) -> float | None:
        values = [v for v in values if not math.isnan(v)] if self.on == "best" else list(values)
        if not values:
            return None
        if self.on == "last":
            return values[-1]
        return max(values) if self.op in (">", ">=", "==") else min(values)

    def passes(self, value: float | None) -> bool:
        return value is not None and not math.isnan(value) and OPERATORS[self.op](value, self.threshold)


def evaluate(checks: Iterable[Check], history: Callable[[str], list[float]]) -> list[dict]:
    """Each check against its metric's values in step order (`history(name)`); a missing metric fails."""
    results = []
    for check in checks:
        value = check.value_of(history(check.metric))
        results.append({"metric": check.metric, "expression": check.text, "value": value,
                        "passed": check.passes(value)})
    return results


def parse_check(metric: str, expression: str) -> Check:
    """Raises ValueError with the reason when the expression is not in the grammar."""
    match = _GRAMMAR.match(expression)
    if not match:
        raise ValueError(
            f"check {expression!r} is not of the form '[best|last] OP NUMBER' with OP one of >=, >, <=, <, =="
        )
    on, op, number = match.groups()
    return Check(metric=metric, op=op, threshold=float(number), on=on or "last")
