"""`NotebookView`, a run's executed notebook as the run detail's Notebook tab draws it (the renderables of
`workbench/notebook_render.py`, as `workbench runs notebook` prints them), or the line saying why there is
none yet; `read_notebook`, what the screen's thread worker calls to load it, and `lay_out`, which turns it
into lines at the pane's width in that worker too. Highlighting and wrapping a whole notebook takes seconds
for a long one: off the event loop, and the view draws only the lines it shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.text import Text
from textual import work
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from workbench.errors import WorkbenchError
from workbench.notebook_render import NotebookError, render


@dataclass(frozen=True)
class NotebookContent:
    """What the tab shows: the notebook's renderables, or `message` (why there are none); `signature` is
    the file's (mtime, size) when it was read, so an unchanged file is not read and drawn again."""
    renderables: list[RenderableType]
    message: str | None = None
    signature: tuple[int, int] | None = None


def read_notebook(wb: Any, run_id: str, seen: tuple[int, int] | None, running: bool) -> NotebookContent | None:
    """The run's executed notebook, rendered; None when the file is as it was at `seen`, or when a
    running run's file does not parse (caught mid-write: what is shown stays until the next read)."""
    try:
        path = wb.run_notebook(run_id)
        stat = path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        if signature == seen:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
    except WorkbenchError as exc:
        return NotebookContent([], message=str(exc))
    except OSError as exc:
        return NotebookContent([], message=f"cannot read run {run_id}'s notebook: {exc.strerror or exc}")
    try:
        return NotebookContent(render(text, path=str(path)), signature=signature)
    except NotebookError as exc:
        return None if running and seen is not None else NotebookContent([], message=str(exc), signature=signature)


def lay_out(content: NotebookContent, width: int) -> list[Strip]:
    """The content as lines `width` cells wide (none for no width: a pane not shown yet); safe in a thread."""
    if width <= 0:
        return []
    console = Console(width=width, color_system="truecolor", force_terminal=True, legacy_windows=False,
                      markup=False, highlight=False, emoji=False)
    renderable = Text(content.message) if content.message is not None else Group(*content.renderables)
    return [Strip(line) for line in console.render_lines(renderable, console.options.update_width(width), pad=False)]


class NotebookView(ScrollView, can_focus=True):
    """The laid-out lines, drawing only those in view; laid out again (in a thread) when its width changes."""

    DEFAULT_CSS = """
    NotebookView { padding: 0 1; overflow-y: scroll; }
    NotebookView.message { color: $text-muted; }
    """

    def __init__(self, content: NotebookContent, *, id: str | None = None) -> None:  # noqa: A002 - Textual's
        super().__init__(id=id)
        self.content = content
        self.set_class(content.message is not None, "message")
        self.lines: list[Strip] = []
        self._width = 0  # what `lines` were laid out for: none yet, laid out once the view has a width

    @property
    def layout_width(self) -> int:
        """The width a line gets: the pane's, less its padding and scrollbar (always there, so it is stable)."""
        return self.scrollable_content_region.width

    def show(self, content: NotebookContent, lines: list[Strip], width: int) -> None:
        """`content` as laid out at `width`; laid out again here when the pane is another width by now."""
        self.content = content
        self.set_class(content.message is not None, "message")
        self._set_lines(lines, width)
        if width != self.layout_width:
            self._relayout(content, self.layout_width)

    def on_resize(self) -> None:
        if self.content is not None and self.layout_width != self._width:
            self._relayout(self.content, self.layout_width)

    @work(thread=True, exclusive=True, exit_on_error=False, group="notebook-layout")
    def _relayout(self, content: NotebookContent, width: int) -> None:
        lines = lay_out(content, width)
        self.app.call_from_thread(self._laid_out, content, lines, width)

    def _laid_out(self, content: NotebookContent, lines: list[Strip], width: int) -> None:
        if content is self.content and width == self.layout_width:  # else a newer layout is on its way
            self._set_lines(lines, width)

    def _set_lines(self, lines: list[Strip], width: int) -> None:
        self.lines, self._width = lines, width
        self.virtual_size = Size(width, len(lines))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width, style = self.size.width, self.rich_style
        index = scroll_y + y
        if index >= len(self.lines):
            return Strip.blank(width, style)
        return self.lines[index].apply_style(style).crop_extend(scroll_x, scroll_x + width, style)
