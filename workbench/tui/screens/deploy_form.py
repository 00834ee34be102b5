"""Promote a model version (from the Models screen, key D): pick the machine, optionally the port."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, OptionList, Static

from workbench.tui.cells import escape
from workbench.tui.screens.dialog import Dialog


class DeployFormScreen(Dialog[dict | None]):
    def __init__(self, ref: str, machines: list[str], port: int | None) -> None:
        super().__init__()
        self.ref, self.machines, self.port = ref, machines, port

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]Deploy {escape(self.ref)}[/b] — where?")
            yield OptionList(*self.machines, id="deploy-machine")
            yield Input(value=str(self.port or ""), placeholder="port on the machine (empty: 8080, or the "
                                                                "deployment's own)", id="deploy-port")
            yield Static("↑↓ machine · enter in the port field deploys · esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#deploy-machine", OptionList).highlighted = 0

    def on_option_list_option_selected(self) -> None:
        self.query_one("#deploy-port", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text and (not text.isdigit() or not 0 < int(text) < 65536):
            self.notify(f"{text!r} is not a port", severity="warning")
            return
        chosen = self.query_one("#deploy-machine", OptionList).highlighted
        if chosen is None:
            return
        self.dismiss({"machine": self.machines[chosen], "port": int(text) if text else None})
