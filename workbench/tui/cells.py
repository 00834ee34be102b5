"""The screens' table cells (rich Text) and markup: statuses in colour, whole `key=value` items in a narrow
column, folders cut from the start. The text in them is shaped by workbench/formatting.py."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

from rich.cells import cell_len
from rich.text import Text

from workbench.formatting import ELLIPSIS, Pairs, RunLike, fit_items, pairs, shown_status
from workbench.textsafe import printable

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "yellow", "queued": "cyan",
                "cancelled": "magenta", "pruned": "magenta", "lost": "bright_black", "unreachable": "bold yellow"}


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


def metrics_cell(run: RunLike) -> Text:
    """The run's latest metrics, led by its checks' verdict (✓ all passed, ✗ one failed) when it has checks.
    Only a run that succeeded has a verdict (history from older versions may record one for a cancelled run)."""
    prefix = Text()
    if run.status not in (None, "succeeded"):
        pass
    elif run.verdict == "pass":
        prefix.append("✓ ", style="green")
    elif run.verdict == "fail":
        prefix.append("✗ ", style="red")
    return ItemsText(pairs(run.summary).items, prefix=prefix)


SESSION_MARK = "⌁ "  # leads a JupyterLab session's name in a list of runs


def project_cell(run: Any) -> Text:
    """`project/experiment`; a JupyterLab session's led by ⌁, which stays when the column narrows."""
    text = f"{run.project}/{run.experiment}"
    return cell(SESSION_MARK + text if run.kind == "session" else text)


def status_cell(status: str) -> Text:
    return cell(status, STATUS_STYLE.get(status, ""))


def table_status(run: RunLike) -> Text:
    """A run's status in a table column (9 cells): a running run whose host does not answer is "running?"
    (it still runs there, as far as anyone knows; the record keeps "running")."""
    status = shown_status(run)
    return cell("running?", STATUS_STYLE[status]) if status == "unreachable" else status_cell(status)
