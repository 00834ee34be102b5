"""The one look and behaviour of Workbench's dialogs: centred, bordered, esc cancels (answers None)."""

from __future__ import annotations

from typing import TypeVar

from textual.binding import Binding
from textual.screen import ModalScreen

T = TypeVar("T")


class Dialog(ModalScreen[T]):
    """Subclasses compose their content inside a container with class `dialog`."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]
    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > .dialog { width: 70; max-width: 95%; height: auto; max-height: 90%; border: round $accent;
                       background: $surface; padding: 0 1; }
    Dialog .hint { color: $text-muted; }
    """

    def action_cancel(self) -> None:
        self.dismiss(None)
