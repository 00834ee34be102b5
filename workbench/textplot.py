"""Plots made of characters, for the CLI (and any terminal view): how a swept param relates to the objective."""

from __future__ import annotations

import math
from typing import Any, Sequence

HEIGHT = 8


def param_scatter(trials: Sequence[Any], param: str, objective: str, width: int = 60) -> list[str]:
    """One scatter: the param across, the objective up, a `●` per trial that has both (a number param on a
    linear axis, or a log one when it spans two decades or more; other values as evenly spaced categories).
    `trials`: with `params` and `objective` (the facade's `Trial`). [] when fewer than two trials have a value."""
    points = [(t.params.get(param), t.objective) for t in trials
              if t.objective is not None and t.params.get(param) is not None]
    if len(points) < 2:
        return []
    width = max(20, width)
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x, _ in points)
    if numeric:
        xs = [float(x) for x, _ in points]
        low, high = min(xs), max(xs)
        log = low > 0 and high / low >= 100
        scale = (lambda v: math.log10(v)) if log else (lambda v: v)
        span = (scale(high) - scale(low)) or 1.0
        columns = [round((scale(x) - scale(low)) / span * (width - 1)) for x in xs]
        left, right = f"{low:.3g}", f"{high:.3g}" + (" (log)" if log else "")
    else:
        categories = sorted({str(x) for x, _ in points})
        step = (width - 1) / max(1, len(categories) - 1)
        columns = [round(categories.index(str(x)) * step) for x, _ in points]
        left, right = categories[0], categories[-1]
    ys = [y for _, y in points]
    bottom, top = min(ys), max(ys)
    rows = [[" "] * width for _ in range(HEIGHT)]
    for column, y in zip(columns, ys):
        row = HEIGHT - 1 - round((y - bottom) / ((top - bottom) or 1.0) * (HEIGHT - 1))
        rows[row][column] = "●"
    label = max(len(f"{top:.4g}"), len(f"{bottom:.4g}"))
    lines = [f"{objective} by {param}"]
    for i, row in enumerate(rows):
        tick = f"{top:.4g}" if i == 0 else f"{bottom:.4g}" if i == HEIGHT - 1 else ""
        lines.append(f"{tick:>{label}} │{''.join(row).rstrip()}")
    lines.append(" " * label + " └" + "─" * width)
    lines.append(" " * (label + 2) + left + " " * max(1, width - len(left) - len(right)) + right)
    return lines


MARKS = "●○◆◇▲△■□×+*#"


def overlay(title: str, curves: list[tuple[str, list[tuple[Any, Any, Any]]]], width: int = 60,
            height: int = HEIGHT) -> list[str]:
    """Several runs' curves of one metric on shared axes (step across, value up), each run with its own
    mark, named in the legend under the chart. `curves`: (label, [(step, low, high)]) as the store's
    downsampled series gives them. [] when no run has a finite point."""
    points = [(i, step, (low + high) / 2) for i, (_, series) in enumerate(curves) for step, low, high in series
              if low is not None and high is not None and math.isfinite(low) and math.isfinite(high)]
    if not points:
        return []
    width = max(20, width)
    first, last = min(p[1] for p in points), max(p[1] for p in points)
    bottom, top = min(p[2] for p in points), max(p[2] for p in points)
    rows = [[" "] * width for _ in range(height)]
    for i, step, value in points:
        column = round((step - first) / ((last - first) or 1) * (width - 1))
        row = height - 1 - round((value - bottom) / ((top - bottom) or 1.0) * (height - 1))
        rows[row][column] = MARKS[i % len(MARKS)]
    label = max(len(f"{top:.4g}"), len(f"{bottom:.4g}"))
    lines = [title]
    for r, row in enumerate(rows):
        tick = f"{top:.4g}" if r == 0 else f"{bottom:.4g}" if r == height - 1 else ""
        lines.append(f"{tick:>{label}} │{''.join(row).rstrip()}")
    lines.append(" " * label + " └" + "─" * width)
    left, right = f"step {first}", f"{last}"
    lines.append(" " * (label + 2) + left + " " * max(1, width - len(left) - len(right)) + right)
    lines.append(" " * (label + 2) + "  ".join(f"{MARKS[i % len(MARKS)]} {name}" for i, (name, _) in enumerate(curves)))
    return lines
