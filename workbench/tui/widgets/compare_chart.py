"""One metric of several runs on shared axes: each run's curve in its own colour (the terminal's 16 ANSI
colours, so the 16-colour theme shows them too), named in the legend of the border title."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from workbench.tui.cells import escape
from workbench.tui.widgets.metric_chart import Y_LABEL_WIDTH, draw

RUN_COLOURS = ("red", "green", "yellow", "blue", "magenta", "cyan", "bright_red", "bright_green",
               "bright_yellow", "bright_blue", "bright_magenta", "bright_cyan")


def run_colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


class CompareChart(Widget):
    DEFAULT_CSS = """
    CompareChart { height: 11; border: round $panel-lighten-2; border-title-color: $accent; padding: 0 1; }
    """

    def __init__(self, metric: str, runs: list[dict[str, Any]], **kwargs: Any) -> None:
        """`runs`: [{"id", "series"}] in the order of the comparison (their colours)."""
        super().__init__(**kwargs)
        self.metric, self.runs = metric, runs
        self.border_title = escape(metric)
        self.border_subtitle = "  ".join(f"[{run_colour(i)}]━[/] {escape(run['id'])}" for i, run in enumerate(runs))

    def render(self) -> Text:
        width = max(4, self.content_size.width - Y_LABEL_WIDTH - 1)
        height = max(2, self.content_size.height - 1)
        return draw([(run["series"], run_colour(i)) for i, run in enumerate(self.runs)], width, height)
