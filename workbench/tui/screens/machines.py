"""Machines: this workstation now; SSH-attached GPU hosts arrive with the machines issue."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Static

from workbench.tui.screens.base import BaseScreen
from workbench.tui.screens.dashboard import machine_summary


class MachineSampled(Message):
    def __init__(self, sample: Any) -> None:
        super().__init__()
        self.sample = sample


class MachinesScreen(BaseScreen):
    MODE = "machines"
    DEFAULT_CSS = """
    MachinesScreen #local { border: round $panel-lighten-2; padding: 0 1; height: auto; }
    MachinesScreen .hint { color: $text-muted; padding: 1 1; }
    """

    def compose_body(self) -> ComposeResult:
        yield Static("sampling…", id="local")
        yield Static("SSH hosts are not supported yet: adding GPU boxes over SSH (with live telemetry) is the "
                     "next step on the roadmap.", classes="hint")

    def reload(self) -> None:
        self.sample()

    @work(thread=True, exclusive=True, exit_on_error=False, group="machines")
    def sample(self) -> None:
        self.post_message(MachineSampled(self.workbench.local_machine()))

    def on_machine_sampled(self, message: MachineSampled) -> None:
        self.query_one("#local", Static).update(machine_summary(message.sample))
