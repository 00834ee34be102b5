"""`NotebookView`, a run's executed notebook as the run detail's Notebook tab draws it (the renderables of
`workbench/notebook_render.py`, as `workbench runs notebook` prints them), or the line saying why there is
none yet; and `read_notebook`, what the screen's thread worker calls to load it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from textual.widgets import Static

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


class NotebookView(Static):
    DEFAULT_CSS = """
    NotebookView { padding: 0 1; }
    NotebookView.message { color: $text-muted; }
    """

    def show(self, content: NotebookContent) -> None:
        self.set_class(content.message is not None, "message")
        self.update(Text(content.message) if content.message is not None else Group(*content.renderables))
