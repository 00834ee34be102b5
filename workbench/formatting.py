"""Text shared by the CLI and the app: times, durations, sizes, costs, params and metrics in short form.

Plain strings (no markup, no textual): the app's table cells and markup are built on these in
tui/cells.py. A column narrower than its text never cuts a `key=value` item (`iterations=2000` cut to
`iterations=20` reads as another value): it shows whole items and `…` for those left out."""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from rich.cells import cell_len

from workbench.textsafe import printable

ELLIPSIS = "…"


class EngineOutput(str):
    """A line the engine printed (a build's output), escape sequences and all: a front end keeps its colours
    on a terminal (`textsafe.coloured_text`) and strips them elsewhere (`textsafe.log_text`)."""


class RunLike(Protocol):
    """What these helpers read of a run: the facade's `RunRow`, `Run` and `RunDetail` all have it."""
    id: str
    status: str
    status_reason: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    params: dict[str, Any]
    summary: dict[str, Any]
    verdict: str | None


# statuses -------------------------------------------------------------------------------------------------
def shown_status(run: RunLike) -> str:
    """A running run whose host does not answer still runs there: "unreachable", not hidden as "running"."""
    if run.status == "running" and (run.status_reason or "").startswith("host unreachable"):
        return "unreachable"
    return run.status


# params and metrics ---------------------------------------------------------------------------------------
class Pairs(str):
    """`key=value` items joined by spaces (ending in `…` when some were left out), which remembers its items
    so that a narrow column can show fewer of them, whole."""

    items: tuple[str, ...]
    more: bool

    def __new__(cls, items: Iterable[str], more: bool = False) -> Pairs:
        items = tuple(printable(item) for item in items)
        self = super().__new__(cls, " ".join(items + ((ELLIPSIS,) if more else ())))
        self.items, self.more = items, more
        return self


def number_text(value: Any) -> str:
    """A param or metric value as the CLI prints it: floats to 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def short_value(value: Any) -> str:
    """A param or metric value as the app shows it: as `number_text`, NaN written `NaN`."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return number_text(value)


def pairs(values: dict[str, Any], limit: int | None = None,
          value_text: Callable[[Any], str] = short_value) -> Pairs:
    """`k=v k=v` for the first `limit` items (all by default), ending in `…` when some were left out; a cell
    narrower than the text shows fewer items, each whole."""
    items = [f"{k}={value_text(v)}" for k, v in list(values.items())[:limit]]
    return Pairs(items, more=limit is not None and len(values) > limit)


def reading_order(runs: Sequence[RunLike], lead_metric: Mapping[str, str] | None = None
                  ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each run's params and metrics reordered so that a narrow column shows first what tells the runs apart.

    `runs` is one page or filtered list of runs (with `id`, `params` and `summary`, as `run_page` and
    `Workbench.runs` return them). For each run, in the order of `runs`, returns `(params, metrics)`: new
    dicts (the runs are not changed) holding the same items as `run.params` and `run.summary`, ordered:
    - params: those whose value differs between the runs of `runs` that set them first (runs of another
      experiment, without that param, do not make it differ), then the others; each group in the run's own
      order. One run alone keeps its order (nothing differs).
    - metrics: `lead_metric[run.id]` first when the run has it (its sweep's objective, or else its
      experiment's first check's metric: `services.compare.lead_metrics` works that mapping out), then the
      others in the run's own order.
    Feed each dict to `pairs()` for a cell that drops whole items from the end when narrow."""
    lead_metric = lead_metric or {}
    values: dict[str, set[str]] = {}
    for run in runs:
        for name, value in run.params.items():
            values.setdefault(name, set()).add(repr(value))
    differing = {name for name, seen in values.items() if len(seen) > 1}
    ordered = []
    for run in runs:
        params = run.params
        first = {k: v for k, v in params.items() if k in differing}
        metrics = run.summary
        lead = lead_metric.get(run.id)
        ordered.append(({**first, **{k: v for k, v in params.items() if k not in first}},
                        {lead: metrics[lead], **metrics} if lead in metrics else dict(metrics)))
    return ordered


# fitting text in a width ----------------------------------------------------------------------------------
def elide(text: str, width: int) -> str:
    """`text` in at most `width` cells, ending in `…` when it had to be cut (names, paths; never pairs)."""
    if cell_len(text) <= width:
        return text
    if width < 1:
        return ""
    kept, used = [], 0
    for char in text:
        used += cell_len(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + ELLIPSIS


def fit_items(items: Sequence[str], width: int, more: bool = False) -> str:
    """As many whole items as fit in `width` cells, then `…` if any was left out; an item is never cut."""
    whole = " ".join([*items, ELLIPSIS] if more else items)
    if cell_len(whole) <= width:
        return whole
    shown: list[str] = []
    for item in items:
        if cell_len(" ".join([*shown, item, ELLIPSIS])) > width:
            break
        shown.append(item)
    return " ".join([*shown, ELLIPSIS]) if width >= 1 else ""


def share_width(available: int, columns: Sequence[tuple[str, int, int]]) -> dict[str, int]:
    """Widths for columns `(key, least, weight)` in `available` cells: each gets its least width and what is
    left goes to the weighted ones in proportion (so a wide terminal widens params and metrics, not ids).
    When even the least widths do not fit, they are kept (the table scrolls sideways)."""
    widths = {key: least for key, least, _ in columns}
    spare = available - sum(widths.values())
    total_weight = sum(weight for _, _, weight in columns)
    if spare <= 0 or not total_weight:
        return widths
    given = 0
    weighted = [(key, weight) for key, _, weight in columns if weight]
    for index, (key, weight) in enumerate(weighted):
        share = spare - given if index == len(weighted) - 1 else spare * weight // total_weight
        widths[key] += share
        given += share
    return widths


# times and durations --------------------------------------------------------------------------------------
def run_seconds(run: RunLike, now: float) -> float | None:
    """How long a run has run (until `now` while it runs); None before it started."""
    if not run.started_at:
        return None
    return max(0.0, (run.finished_at or now) - run.started_at)


def seconds_text(seconds: float | None) -> str:
    """`12.5s`, `3m07s`, `2h05m`; `-` for None."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def duration(run: RunLike, now: float) -> str:
    return seconds_text(run_seconds(run, now))


def when(ts: float | None) -> str:
    """A moment in local time, to the second; `-` for none."""
    return "-" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def started(run: RunLike, form: str = "%m-%d %H:%M") -> str:
    """When a run started (when it was created, while it waits), in local time."""
    stamp = run.started_at or run.created_at
    return time.strftime(form, time.localtime(stamp)) if stamp else "-"


def ago(stamp: float | None, now: float) -> str:
    if not stamp:
        return "-"
    seconds = max(0, int(now - stamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


# sizes and money ------------------------------------------------------------------------------------------
def size(nbytes: int | None) -> str:
    """Bytes in the app: `512 B` up to `1.5 TiB`; `n/a` when unknown."""
    if nbytes is None:
        return "n/a"
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_bytes(count: int) -> str:
    """Bytes in the CLI's lines and the image events: KiB up to GiB, one decimal."""
    if count >= 1 << 30:
        return f"{count / 2**30:.1f} GiB"
    if count >= 1 << 20:
        return f"{count / 2**20:.1f} MiB"
    return f"{count / 2**10:.1f} KiB"


def money(amount: float | None) -> str:
    """A cost: cents below $100, whole dollars above; "-" where the machine has no rate."""
    if amount is None:
        return "-"
    return f"${amount:,.2f}" if amount < 100 else f"${amount:,.0f}"
