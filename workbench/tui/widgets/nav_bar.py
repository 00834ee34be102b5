"""The row of screens under the header: number keys 1–6 jump, [ and ] step; the current one is lit."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

SCREENS = (("dashboard", "Dashboard"), ("machines", "Machines"), ("projects", "Projects"), ("runs", "Runs"),
           ("models", "Models"), ("deployments", "Deployments"))


class NavBar(Static):
    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def render(self) -> Text:
        text = Text()
        for number, (mode, title) in enumerate(SCREENS, start=1):
            style = "bold reverse" if mode == self.current else ""
            text.append(f" {number} {title} ", style=style)
        return text
