"""What every top-level screen shares: header, navigation row, footer, and a periodic refresh that runs
its blocking work in a thread worker while the screen is visible."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingsMap
from textual.screen import Screen
from textual.widgets import Footer, Header
from textual.worker import Worker

from workbench.tui.widgets.nav_bar import NavBar

PaletteCommand = tuple[str, str, Callable[[], Any]]


class BaseScreen(Screen[None]):
    MODE = ""
    REFRESH_SECONDS = 2.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield Footer(compact=True)  # 80 columns: every key of a screen fits, help and quit included

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def workbench(self) -> Any:
        return self.app.workbench  # type: ignore[attr-defined]

    @property
    def clock(self) -> Callable[[], float]:
        return self.app.clock  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        self.reload()
        if self.REFRESH_SECONDS:
            self._timer = self.set_interval(self.REFRESH_SECONDS, self.reload)

    def on_screen_suspend(self) -> None:
        if self.REFRESH_SECONDS and hasattr(self, "_timer"):
            self._timer.pause()
            self._suspended = True

    def on_screen_resume(self) -> None:
        if self.REFRESH_SECONDS and getattr(self, "_suspended", False):
            self._timer.resume()
            self.reload()
        self._suspended = False

    def reload(self) -> None:
        """Starts this screen's data worker (override)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.worker_state_changed(event.worker, event.state)  # type: ignore[attr-defined]

    def palette_commands(self) -> list[PaletteCommand]:
        """(name, help, callback) for the command palette on this screen."""
        return []


SCREEN_MODULES = ("dashboard", "machines", "machine_detail", "projects", "ci_commits", "runs", "run_detail",
                  "compare", "sweeps", "sweep", "models", "deployments")


def bindings_by_screen(app: App[Any]) -> dict[str, list[Binding]]:
    """Every screen's bindings with the app's, as the keymap sees them (for clash reports)."""
    for module in SCREEN_MODULES:
        importlib.import_module(f"workbench.tui.screens.{module}")
    out = {}
    pending = list(BaseScreen.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        own = [b for group in BindingsMap(cls.BINDINGS).key_to_bindings.values() for b in group]
        shared = [b for group in BindingsMap(type(app).BINDINGS).key_to_bindings.values() for b in group]
        out[cls.__name__.removesuffix("Screen")] = own + shared
    return out
