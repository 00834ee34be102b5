"""A screen whose feature is not built yet: says so plainly, with a one-line hint."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from workbench.tui.screens.base import BaseScreen


class EmptyStateScreen(BaseScreen):
    REFRESH_SECONDS = 0
    MESSAGE = ""  # plain text, never markup: `[deploy]` shows as written
    DEFAULT_CSS = "EmptyStateScreen .empty { padding: 2 2; color: $text-muted; }"

    def compose_body(self) -> ComposeResult:
        yield Static(self.MESSAGE, classes="empty", markup=False)
