"""Add an SSH host: a name and `[user@]host[:port]` (or a ~/.ssh/config alias), optionally a key file."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class AddMachineScreen(ModalScreen[dict[str, str] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="add_machine.cancel")]
    DEFAULT_CSS = """
    AddMachineScreen { align: center middle; }
    AddMachineScreen > Vertical { width: 70; max-width: 95%; height: auto; border: round $accent;
                                  background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
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

    def action_cancel(self) -> None:
        self.dismiss(None)
