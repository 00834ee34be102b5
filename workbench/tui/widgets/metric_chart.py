"""A line chart of one metric over steps, drawn with braille dots (2×4 per cell): y axis with min/max,
x axis with the step range, and the last/min/max values in its title. It draws from a downsampled series
of (step, min, max) triples, so a million-point history costs no more than a few hundred."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.widget import Widget

from workbench.tui.cells import escape

BRAILLE = 0x2800
DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row within cell][column within cell]
Y_LABEL_WIDTH = 9


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class MetricChart(Widget):
    DEFAULT_CSS = """
    MetricChart { height: 12; border: round $panel-lighten-2; border-title-color: $accent; padding: 0 1; }
    """

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = name
        self.data: dict[str, Any] = {"points": 0, "series": []}
        self.border_title = escape(name)
        self.line_style = "bold"

    def set_data(self, data: dict[str, Any]) -> None:
        self.data = data
        self.border_title = (f"{escape(self.metric)}  last {fmt(data.get('last'))}  min {fmt(data.get('min'))}  "
                             f"max {fmt(data.get('max'))}  ({data.get('points', 0):,} points)")
        self.refresh()

    def render(self) -> Text:
        width = max(4, self.content_size.width - Y_LABEL_WIDTH - 1)
        height = max(2, self.content_size.height - 1)
        # the axis spans the steps the header's points were taken at: a downsampled series starts each bucket
        # at its first step, so its last triple lies before the last step
        span = (self.data.get("first_step"), self.data.get("last_step"))
        return draw([(self.data.get("series") or [], self.line_style)], width, height,
                    steps=span if None not in span else None)


def draw(curves: list[tuple[list[tuple[Any, Any, Any]], str]], width: int, height: int,
         steps: tuple[Any, Any] | None = None) -> Text:
    """Curves of (step, min, max) triples on shared axes, in braille (2×4 dots a cell), each in its style; a
    cell two curves cross takes the style of the later one. Y labels left, the step range below: `steps`
    (first, last) where the triples are a downsampling of a known range, else the triples' own."""
    finite_curves = [([(s, lo, hi) for s, lo, hi in series
                       if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)], style)
                     for series, style in curves]
    points = [p for finite, _ in finite_curves for p in finite]
    if not points:
        return Text("no points yet", style="dim")
    low = min(lo for _, lo, _ in points)
    high = max(hi for _, _, hi in points)
    if high == low:
        high, low = high + 0.5, low - 0.5
    first, last = min(p[0] for p in points), max(p[0] for p in points)
    if steps is not None:
        first, last = min(first, steps[0]), max(last, steps[1])
    step_span = max(1, last - first)
    dots_x, dots_y = width * 2, height * 4
    grid = [[0] * width for _ in range(height)]
    owner: list[list[str | None]] = [[None] * width for _ in range(height)]

    def y_dot(value: float) -> int:
        return min(dots_y - 1, max(0, round((high - value) / (high - low) * (dots_y - 1))))

    for finite, style in finite_curves:
        columns: dict[int, tuple[int, int]] = {}
        for step, lo, hi in finite:
            x = min(dots_x - 1, round((step - first) / step_span * (dots_x - 1)))
            top, bottom = y_dot(hi), y_dot(lo)
            if x in columns:
                top, bottom = min(top, columns[x][0]), max(bottom, columns[x][1])
            columns[x] = (top, bottom)

        def plot(x: int, top: int, bottom: int) -> None:
            for y in range(top, bottom + 1):
                grid[y // 4][x // 2] |= DOTS[y % 4][x % 2]
                owner[y // 4][x // 2] = style

        previous: tuple[int, float] | None = None
        for x in sorted(columns):
            top, bottom = columns[x]
            plot(x, top, bottom)
            middle = (top + bottom) / 2
            if previous is not None and x - previous[0] > 0:  # a straight segment from the previous point
                px, py = previous
                y_prev = round(py)
                for xi in range(px + 1, x + 1):
                    yi = round(py + (middle - py) * (xi - px) / (x - px))
                    plot(xi, min(y_prev, yi), max(y_prev, yi))
                    y_prev = yi
            previous = (x, middle)

    text = Text()
    for row in range(height):
        label = fmt(high) if row == 0 else fmt(low) if row == height - 1 else ""
        text.append(f"{label:>{Y_LABEL_WIDTH}}│", style="dim")
        if len(curves) == 1:
            text.append("".join(chr(BRAILLE + cell) if cell else " " for cell in grid[row]), style=curves[0][1])
        else:
            for cell, style in zip(grid[row], owner[row]):
                text.append(chr(BRAILLE + cell) if cell else " ", style=style or "")
        text.append("\n")
    left, right = f"step {first}", f"{last}"
    gap = max(1, width - len(left) - len(right))
    text.append(" " * Y_LABEL_WIDTH + "└" + left + " " * gap + right, style="dim")
    return text
