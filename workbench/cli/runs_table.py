"""`runs list` as a table that fits the terminal: whole `key=value` items, names ending in `…`, and the
columns giving way in a set order when the terminal is narrow."""

from __future__ import annotations

import time
from typing import Any

from rich.cells import cell_len

from workbench.formatting import (Pairs, duration, elide, fit_items, number_text, pairs, reading_order,
                                  shown_status, started)
from workbench.textsafe import printable

_LIST_HEADER = ("ID", "STATUS", "MACHINE", "PROJECT/EXPERIMENT", "PARAMS", "METRICS", "STARTED", "DURATION")
_MACHINE, _PROJECT, _PARAMS, _METRICS, _STARTED = 2, 3, 4, 5, 6


def runs_table(runs: list[Any], available: int, lead: dict[str, str] | None = None) -> list[str]:
    """`runs list` in `available` columns: params and metrics in reading order (formatting.reading_order:
    the params that differ within the list first, each run's lead metric first), shown as whole items then
    `…` (`iterations=2000` is never cut to `iterations=20`); names end in `…`; the start time drops its year
    and seconds before anything narrows. `lead`: run id -> lead metric (compare.lead_metrics)."""
    ordered = reading_order(runs, lead)

    def table(stamp: str) -> list[tuple[Any, ...]]:
        return [_LIST_HEADER] + [
            (run.id, shown_status(run), printable(run.machine or "local"),
             printable(("session: " if run.kind == "session" else "") + f"{run.project}/{run.experiment}"),
             pairs(params, value_text=number_text), pairs(metrics, value_text=number_text),
             started(run, stamp), duration(run, time.time())) for run, (params, metrics) in zip(runs, ordered)]

    def natural(rows: list[tuple[Any, ...]], column: int) -> int:
        return max(cell_len(row[column]) for row in rows)

    def first_items(rows: list[tuple[Any, ...]], column: int) -> int:
        """The least width showing every row's first item whole (and `…` after it if more follow)."""
        return max([cell_len(_LIST_HEADER[column])] + [
            cell_len(fit_items(row[column].items[:1], 10**6, len(row[column].items) > 1))
            for row in rows[1:] if row[column].items])

    rows = table("%Y-%m-%d %H:%M:%S")
    shown = [i for i in range(len(_LIST_HEADER))
             if i != _MACHINE or any((run.machine or "local") != "local" for run in runs)]
    if sum(natural(rows, i) for i in shown) + 2 * (len(shown) - 1) > available:
        rows = table("%m-%d %H:%M")
    names, shorter_names = {_MACHINE: 7, _PROJECT: 12}, {_MACHINE: 5, _PROJECT: 6}
    values = ({_PARAMS: first_items(rows, _PARAMS)}, {_METRICS: first_items(rows, _METRICS)})
    # A table too wide gives way until it fits: the names narrow, then params and then metrics down to their
    # first items (the param that differs, the lead metric), then the start time goes, then the names narrow
    # further. Params and metrics are never cut to a bare `…`: when even that is too wide, params go.
    giving_way = [((), (names, *values)), ((_STARTED,), (names, *values)),
                  ((_STARTED,), (names, *values, shorter_names)),
                  ((_STARTED, _PARAMS), (names, *values, shorter_names))]

    def layout(dropped: tuple[int, ...], steps: tuple[dict[int, int], ...]) -> dict[int, int]:
        """Natural widths less the `dropped` columns, narrowed step by step (each step: the widest of its
        columns a cell at a time, none below its floor) until the table fits."""
        widths = {i: natural(rows, i) for i in shown if i not in dropped}
        for step in steps:
            least = {i: n for i, n in step.items() if i in widths}
            while (sum(widths.values()) + 2 * (len(widths) - 1) > available
                   and (narrowable := [i for i, n in least.items() if widths[i] > n])):
                widths[max(narrowable, key=lambda i: (widths[i], i))] -= 1
        return widths

    for dropped, steps in giving_way:
        widths = layout(dropped, steps)
        if sum(widths.values()) + 2 * (len(widths) - 1) <= available:
            break

    def fitted(text: str, width: int) -> str:
        text = fit_items(text.items, width, text.more) if isinstance(text, Pairs) else elide(text, width)
        return text + " " * (width - cell_len(text))

    def spare() -> int:
        return max(0, available - sum(widths.values()) - 2 * (len(widths) - 1))

    def used(column: int, width: int) -> int:
        return max(cell_len(fitted(row[column], width).rstrip()) for row in rows)

    # Whole items leave a narrowed params or metrics column partly empty: that room goes to metrics, then
    # params, then the names.
    for i in (_PARAMS, _METRICS):
        if i in widths:
            widths[i] = used(i, widths[i])
    for i in (_METRICS, _PARAMS):
        if i in widths:
            widths[i] = used(i, widths[i] + spare())
    for i in (_PROJECT, _MACHINE):
        if i in widths:
            widths[i] += min(natural(rows, i) - widths[i], spare())

    return ["  ".join(fitted(row[i], width) for i, width in widths.items()).rstrip() for row in rows]
