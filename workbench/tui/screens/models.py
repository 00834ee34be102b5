"""Models registered from runs (a later version): an honest empty state until then."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from workbench.tui.screens.base import BaseScreen


class ModelsScreen(BaseScreen):
    MODE = "models"
    REFRESH_SECONDS = 0
    DEFAULT_CSS = "ModelsScreen .empty { padding: 2 2; color: $text-muted; }"

    def compose_body(self) -> ComposeResult:
        yield Static("No models yet. Registering a run's model (with versions and aliases) is not built yet; "
                     "runs already keep their artifacts with sha256 (Runs → enter → Overview).", classes="empty")
