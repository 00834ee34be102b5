"""Cell text shared by the screens: statuses in colour, durations, params and metrics in short form.

A table cell narrower than its text never cuts a `key=value` item (`iterations=2000` cut to `iterations=20`
reads as another value): it shows whole items and `…` for those left out, at the width it is drawn in."""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from rich.cells import cell_len
from rich.text import Text

from workbench.textsafe import printable

if TYPE_CHECKING:  # `workbench runs list` imports this module: keep it light
    from rich.console import Console, ConsoleOptions, RenderResult

STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "yellow", "queued": "cyan",
                "cancelled": "magenta", "pruned": "magenta", "lost": "bright_black", "unreachable": "bold yellow"}


def shown_status(run: dict) -> str:
    """A running run whose host does not answer still runs there: "unreachable", not hidden as "running"."""
    if run.get("status") == "running" and (run.get("status_reason") or "").startswith("host unreachable"):
        return "unreachable"
    return run["status"]


def status_markup(status: str) -> str:
    """For Static text (markup); table cells use status_cell."""
    return f"[{STATUS_STYLE.get(status, '')}]{status}[/]"


def escape(text: str) -> str:
    """User text (names, params, messages) for markup: control characters shown, every bracket literal.
    (rich's and Textual's own escape only touch tag-like brackets; Textual's parser still misreads an
    untouched one such as `[2J` followed by real markup.)"""
    text = printable(str(text)).replace("[", "\\[")
    # a trailing backslash would escape the markup that follows (`name\` + `[/b]`): a zero-width space
    return text + "\u200b" if text.endswith("\\") else text


ELLIPSIS = "…"


class Pairs(str):
    """`key=value` items joined by spaces (ending in `…` when some were left out), which remembers its items
    so that `cell` can show fewer of them, whole, in a narrow column."""

    items: tuple[str, ...]
    more: bool

    def __new__(cls, items: Iterable[str], more: bool = False) -> Pairs:
        items = tuple(printable(item) for item in items)
        self = super().__new__(cls, " ".join(items + ((ELLIPSIS,) if more else ())))
        self.items, self.more = items, more
        return self


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


class FittedText(Text):
    """Text that draws itself in the width it is given (a table cell) as `fitted` shapes it."""

    def fitted(self, width: int) -> Text:
        return self

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        fitted = self.fitted(options.max_width)
        if fitted is self:
            yield from super().__rich_console__(console, options)
        else:
            yield from fitted.__rich_console__(console, options)


class ItemsText(FittedText):
    """A cell of whole items: drawn narrower than its text, it leaves out items from the end and says so
    with `…` (a prefix such as a verdict mark stays). `str()` and equality are those of the full text."""

    def __init__(self, items: Sequence[str], more: bool = False, prefix: Text | None = None,
                 style: str = "") -> None:
        super().__init__(style=style, no_wrap=True, end="")
        self.items, self.more = tuple(items), more
        self.prefix = prefix or Text()
        self.append_text(self.prefix)
        self.append(" ".join([*self.items, ELLIPSIS] if more else self.items))

    def fitted(self, width: int) -> Text:
        if self.cell_len <= width:
            return self
        text = self.prefix.copy()
        text.no_wrap, text.end, text.style = True, "", self.style
        text.append(fit_items(self.items, width - self.prefix.cell_len, self.more))
        return text


def cell(text: str, style: str = "") -> Text:
    """A table cell as rich Text: never parsed as markup (a param like `[64, 32]` stays literal) and cheap
    to render; control characters are shown, never sent to the terminal. Text too long for its column ends
    in `…`; `pairs` text drops whole items instead (see ItemsText)."""
    if isinstance(text, Pairs):
        return ItemsText(text.items, text.more, style=style)
    return Text(printable(text), style=style, no_wrap=True, overflow="ellipsis", end="")


class TailText(FittedText):
    """A cell whose end says most (a folder: its last names): drawn narrower than its text, it keeps the end,
    led by `…`. `str()` and equality are those of the full text."""

    def fitted(self, width: int) -> Text:
        if self.cell_len <= width:
            return self
        kept: list[str] = []
        used = 0
        for char in reversed(self.plain):
            used += cell_len(char)
            if used > width - 1:
                break
            kept.append(char)
        return Text(ELLIPSIS + "".join(reversed(kept)) if width >= 1 else "", style=self.style, no_wrap=True,
                    end="")


def folder_cell(path: str, style: str = "") -> Text:
    """A folder for a table: the home folder as `~`, cut from the start when narrow (`…/code/mnist`)."""
    home = os.path.expanduser("~").rstrip("/")
    if home and (path == home or path.startswith(home + "/")):
        path = "~" + path[len(home):]
    return TailText(printable(path), style=style, no_wrap=True, end="")


def metrics_cell(run: dict[str, Any]) -> Text:
    """The run's latest metrics, led by its checks' verdict (✓ all passed, ✗ one failed) when it has checks.
    Only a run that succeeded has a verdict (history from older versions may record one for a cancelled run)."""
    prefix = Text()
    if run.get("status") not in (None, "succeeded"):
        pass
    elif run.get("verdict") == "pass":
        prefix.append("✓ ", style="green")
    elif run.get("verdict") == "fail":
        prefix.append("✗ ", style="red")
    return ItemsText(pairs(run["summary"]).items, prefix=prefix)


def status_cell(status: str) -> Text:
    return cell(status, STATUS_STYLE.get(status, ""))


def table_status(run: dict[str, Any]) -> Text:
    """A run's status in a table column (9 cells): a running run whose host does not answer is "running?"
    (it still runs there, as far as anyone knows; the record keeps "running")."""
    status = shown_status(run)
    return cell("running?", STATUS_STYLE[status]) if status == "unreachable" else status_cell(status)


def short_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    return str(value)


def pairs(values: dict[str, Any], limit: int | None = None) -> Pairs:
    """`k=v k=v` for the first `limit` items (all by default), ending in `…` when some were left out; a cell
    narrower than the text shows fewer items, each whole."""
    items = [f"{k}={short_value(v)}" for k, v in list(values.items())[:limit]]
    return Pairs(items, more=limit is not None and len(values) > limit)


def reading_order(runs: Sequence[dict[str, Any]], lead_metric: Mapping[str, str] | None = None
                  ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each run's params and metrics reordered so that a narrow column shows first what tells the runs apart.

    `runs` is one page or filtered list of runs (dicts with `id`, `params` and `summary`, as `run_page` and
    `Store.list_runs` return them). For each run, in the order of `runs`, returns `(params, metrics)`: new
    dicts (the runs are not changed) holding the same items as `run["params"]` and `run["summary"]`, ordered:
    - params: those whose value differs between the runs of `runs` that set them first (runs of another
      experiment, without that param, do not make it differ), then the others; each group in the run's own
      order. One run alone keeps its order (nothing differs).
    - metrics: `lead_metric[run["id"]]` first when the run has it (its sweep's objective, or else its
      experiment's first check's metric: `services.compare.lead_metrics` works that mapping out), then the
      others in the run's own order.
    Feed each dict to `pairs()` for a cell that drops whole items from the end when narrow."""
    lead_metric = lead_metric or {}
    values: dict[str, set[str]] = {}
    for run in runs:
        for name, value in run["params"].items():
            values.setdefault(name, set()).add(repr(value))
    differing = {name for name, seen in values.items() if len(seen) > 1}
    ordered = []
    for run in runs:
        params = run["params"]
        first = {k: v for k, v in params.items() if k in differing}
        metrics = run["summary"]
        lead = lead_metric.get(run["id"])
        ordered.append(({**first, **{k: v for k, v in params.items() if k not in first}},
                        {lead: metrics[lead], **metrics} if lead in metrics else dict(metrics)))
    return ordered


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


def duration(run: dict[str, Any], now: float) -> str:
    if not run.get("started_at"):
        return "-"
    seconds = max(0.0, (run.get("finished_at") or now) - run["started_at"])
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def started(run: dict[str, Any]) -> str:
    stamp = run.get("started_at") or run.get("created_at")
    return time.strftime("%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def ago(stamp: float | None, now: float) -> str:
    if not stamp:
        return "-"
    seconds = max(0, int(now - stamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def size(nbytes: int | None) -> str:
    if nbytes is None:
        return "n/a"
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def money(amount: float | None) -> str:
    """A cost: cents below $100, whole dollars above; "-" where the machine has no rate."""
    if amount is None:
        return "-"
    return f"${amount:,.2f}" if amount < 100 else f"${amount:,.0f}"
