"""Launch an experiment: one field per declared param (prefilled with its default), the machine to run on
(this workstation or an SSH host) and the executor."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from workbench.tui.formatting import escape
from workbench.tui.screens.dialog import Dialog

EXECUTORS = [("auto (docker if an engine answers)", "auto"), ("docker", "docker"), ("process", "process")]


class LaunchForm(Dialog[dict[str, Any] | None]):
    BINDINGS = [Binding("ctrl+s", "submit", "Launch", id="launch.submit")]
    DEFAULT_CSS = """
    LaunchForm Horizontal { height: auto; }
    LaunchForm Label { width: auto; min-width: 16; max-width: 30; padding: 1 1 0 0; }
    LaunchForm Input { width: 1fr; }
    LaunchForm Select { width: 1fr; }
    LaunchForm #buttons { margin-top: 1; }
    """

    def __init__(self, project: str, experiment: str, params: dict[str, Any],
                 machines: list[str] | None = None) -> None:
        super().__init__()
        self.project, self.experiment, self.params = project, experiment, params
        self.machines = machines or ["local"]

    def compose(self) -> ComposeResult:
        from workbench.projects.spec import format_param

        with VerticalScroll(classes="dialog"):
            yield Static(f"[b]Launch {escape(self.project)}/{escape(self.experiment)}[/b]  "
                         "(ctrl+s launches · esc cancels)")
            for name, default in self.params.items():
                with Horizontal():
                    yield Label(f"{name} ({type(default).__name__})")
                    field = Input(format_param(default), id=f"param-{name}", placeholder=name)
                    field.border_title = name  # which param this is, even where the label is cut
                    field.tooltip = f"{name}: {type(default).__name__}, default {format_param(default)}"
                    yield field
            with Horizontal():
                yield Label("machine")
                yield Select([("local (this workstation)" if m == "local" else m, m) for m in self.machines],
                             value="local", allow_blank=False, id="machine")
            with Horizontal():
                yield Label("executor")
                yield Select(EXECUTORS, value="auto", allow_blank=False, id="executor")
            with Horizontal(id="buttons"):
                yield Button("Launch", variant="primary", id="launch")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        # the first param's field has the focus: typing must never change another param than the one shown
        fields = self.query(Input)
        (fields.first() if fields else self.query_one("#executor", Select)).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_submit() if event.button.id == "launch" else self.action_cancel()

    def on_input_submitted(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        from workbench.projects.spec import format_param

        overrides = []
        for name, default in self.params.items():
            value = self.query_one(f"#param-{name}", Input).value
            if value != format_param(default):
                overrides.append(f"{name}={value}")
        executor = self.query_one("#executor", Select).value
        self.dismiss({"overrides": overrides, "executor": None if executor == "auto" else executor,
                      "machine": self.query_one("#machine", Select).value})
