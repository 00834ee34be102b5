"""Register one of a run's artifacts as the next version of a model (from the run detail, key M): which
artifact, under which model name; a run that failed its checks needs force, said before asking."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, OptionList, Static

from workbench.tui.cells import escape
from workbench.tui.screens.dialog import Dialog


class RegisterModelScreen(Dialog[dict | None]):
    def __init__(self, run_id: str, artifacts: list[str], name: str, gate: str | None) -> None:
        super().__init__()
        self.run_id, self.artifacts, self.model_name, self.gate = run_id, artifacts, name, gate

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]Register a model from run {escape(self.run_id)}[/b]")
            yield OptionList(*self.artifacts, id="register-artifact")
            yield Input(value=self.model_name, placeholder="model name", id="register-name")
            if self.gate:
                yield Static(f"[yellow]{escape(self.gate)}[/]")
                yield Checkbox("register anyway (recorded as forced)", id="register-force")
            yield Static("↑↓ artifact · enter in the name field registers · esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#register-artifact", OptionList).highlighted = 0

    def on_option_list_option_selected(self) -> None:
        self.query_one("#register-name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        chosen = self.query_one("#register-artifact", OptionList).highlighted
        if not name or chosen is None:
            self.notify("pick an artifact and give the model a name", severity="warning")
            return
        force = bool(self.query("#register-force")) and self.query_one("#register-force", Checkbox).value
        self.dismiss({"artifact": self.artifacts[chosen], "name": name, "force": force})
