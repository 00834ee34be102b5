"""Deployments of registered models (a later version): an honest empty state until then."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from workbench.tui.screens.base import BaseScreen


class DeploymentsScreen(BaseScreen):
    MODE = "deployments"
    REFRESH_SECONDS = 0
    DEFAULT_CSS = "DeploymentsScreen .empty { padding: 2 2; color: $text-muted; }"

    def compose_body(self) -> ComposeResult:
        yield Static("No deployments yet. Serving a model on a remote machine with health checks and rollback "
                     "is not built yet; a project's [deploy] table is already validated.", classes="empty")
