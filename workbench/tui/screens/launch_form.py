"""Launch an experiment: one field per declared param (prefilled with its default), the machine to run on
(this workstation, an SSH host, or auto: placement picks, as `--machine auto`) and the executor. A value its
param cannot take keeps the form open with what was typed, and says why under the fields."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from workbench.services.spec_text import param_problem, param_text
from workbench.tui.cells import escape
from workbench.tui.screens.dialog import Dialog

EXECUTORS = [("auto (docker if an engine answers)", "auto"), ("docker", "docker"), ("process", "process")]
AUTO_MACHINE = ("auto (placement picks where it fits)", "auto")


class Rechecked(Message):
    def __init__(self, overrides: dict[str, str], problems: list[tuple[str | None, str]]) -> None:
        super().__init__()
        self.overrides, self.problems = overrides, problems


class LaunchForm(Dialog[dict[str, Any] | None]):
    BINDINGS = [Binding("ctrl+s", "submit", "Launch", id="launch.submit")]
    DEFAULT_CSS = """
    LaunchForm Horizontal { height: auto; }
    LaunchForm Label { width: auto; min-width: 16; max-width: 30; padding: 1 1 0 0; }
    LaunchForm Input { width: 1fr; }
    LaunchForm Select { width: 1fr; }
    LaunchForm #buttons { margin-top: 1; }
    LaunchForm #launch-error { dock: bottom; height: auto; color: $error; background: $surface; }
    """

    def __init__(self, project: str, experiment: str, params: dict[str, Any],
                 machines: list[str] | None = None, path: str | None = None) -> None:
        """`path`: the project folder, whose spec is read again when the form is sent (None: not read)."""
        super().__init__()
        self.project, self.experiment, self.params, self.path = project, experiment, params, path
        machines = machines or ["local"]
        self.machines = machines[:1] + ["auto"] + machines[1:]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield Static(f"[b]Launch {escape(self.project)}/{escape(self.experiment)}[/b]  "
                         "(ctrl+s launches · esc cancels)")
            for name, default in self.params.items():
                with Horizontal():
                    yield Label(f"{name} ({type(default).__name__})")
                    field = Input(param_text(default), id=f"param-{name}", placeholder=name)
                    field.border_title = name  # which param this is, even where the label is cut
                    field.tooltip = f"{name}: {type(default).__name__}, default {param_text(default)}"
                    yield field
            with Horizontal():
                yield Label("machine")
                yield Select([("local (this workstation)", m) if m == "local" else AUTO_MACHINE if m == "auto"
                              else (m, m) for m in self.machines], value="local", allow_blank=False, id="machine")
            with Horizontal():
                yield Label("executor")
                yield Select(EXECUTORS, value="auto", allow_blank=False, id="executor")
            yield Static("", id="launch-error")
            with Horizontal(id="buttons"):
                yield Button("Launch", variant="primary", id="launch")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        # the first param's field has the focus (typing must never change another param than the one shown);
        # without params, the machine: what a user picks first
        fields = self.query(Input)
        (fields.first() if fields else self.query_one("#machine", Select)).focus()
        self.query_one("#launch-error", Static).display = False

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_submit() if event.button.id == "launch" else self.action_cancel()

    def on_input_submitted(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        typed = {name: self.query_one(f"#param-{name}", Input).value for name in self.params}
        problems = [(name, problem) for name, text in typed.items()
                    if (problem := param_problem(name, self.params[name], text))]
        if problems:
            self._refuse(problems)
            return
        if self.path is None:
            self._launch({name: text for name, text in typed.items() if text != param_text(self.params[name])})
        else:  # the spec may have changed since the form opened: read again, in a worker
            self.recheck(self.path, typed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="launch-form")
    def recheck(self, path: str, typed: dict[str, str]) -> None:
        problems, overrides = self.app.workbench.recheck_launch(  # type: ignore[attr-defined]
            path, self.experiment, typed, self.params)
        self.post_message(Rechecked(overrides, problems))

    def on_rechecked(self, message: Rechecked) -> None:
        if message.problems:
            self._refuse(message.problems)
        else:
            self._launch(message.overrides)

    def _refuse(self, problems: list[tuple[str | None, str]]) -> None:
        """The form stays, with what was typed; the first field named has the focus."""
        error = self.query_one("#launch-error", Static)
        error.update("\n".join(escape(problem) for _, problem in problems))
        error.display = True  # docked under the fields: seen however far they are scrolled
        named = [name for name, _ in problems if name in self.params]
        for name in self.params:
            self.query_one(f"#param-{name}", Input).set_class(name in named, "-invalid")
        if named:
            self.query_one(f"#param-{named[0]}", Input).focus()

    def _launch(self, overrides: dict[str, str]) -> None:
        executor = self.query_one("#executor", Select).value
        self.dismiss({"overrides": [f"{name}={text}" for name, text in overrides.items()],
                      "executor": None if executor == "auto" else executor,
                      "machine": self.query_one("#machine", Select).value})
