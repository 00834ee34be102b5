"""A one-field dialog: the folder of a project to register."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from workbench.tui.screens.dialog import Dialog


class AddProjectScreen(Dialog[str | None]):
    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Add a project[/b]: the folder holding its workbench.toml")
            yield Input(placeholder="~/code/my-experiment", id="path")
            yield Static("enter adds · esc cancels", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
