"""Asks for one value (an alias name, a model name): enter answers it, esc cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from workbench.tui.cells import escape
from workbench.tui.screens.dialog import Dialog


class PromptScreen(Dialog[str | None]):
    def __init__(self, title: str, placeholder: str, value: str = "") -> None:
        super().__init__()
        self.title_text, self.placeholder, self.value = title, placeholder, value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]{escape(self.title_text)}[/b]")
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt-value")
            yield Static("enter answers · esc cancels", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value:
            self.dismiss(value)
