"""Add an SSH host: a name and `[user@]host[:port]` (or a ~/.ssh/config alias), optionally a key file."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Static

from workbench.tui.screens.dialog import Dialog


class AddMachineScreen(Dialog[dict[str, str] | None]):
    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Add an SSH host[/b] (its host key is shown, not trusted)")
            yield Input(placeholder="name, e.g. gpu-box (or a Host alias of ~/.ssh/config)", id="name")
            yield Input(placeholder="[user@]host[:port] (empty: the alias's settings)", id="ssh")
            yield Input(placeholder="identity file (empty: ssh-agent, then ~/.ssh/id_*)", id="identity")
            yield Static("enter on the last field adds · esc cancels")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "identity":
            self.focus_next()
            return
        name = self.query_one("#name", Input).value.strip()
        if not name:
            self.notify("a name is needed", severity="warning")
            self.query_one("#name", Input).focus()
            return
        self.dismiss({"name": name, "ssh": self.query_one("#ssh", Input).value.strip(),
                      "identity": self.query_one("#identity", Input).value.strip()})
