"""A one-field dialog: the folder of a project to register."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class AddProjectScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="add_project.cancel")]
    DEFAULT_CSS = """
    AddProjectScreen { align: center middle; }
    AddProjectScreen > Vertical { width: 70; max-width: 95%; height: auto; border: round $accent;
                                  background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Add a project[/b]: the folder holding its workbench.toml")
            yield Input(placeholder="~/code/my-experiment", id="path")
            yield Static("enter adds · esc cancels", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
