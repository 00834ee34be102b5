"""Runs side by side (marked on the Runs screen with space, opened with C): a table of what differs — the
params, each metric's last and best value with the best run's in bold green, the checks verdicts — and a
chart per metric with every run's curve in its colour, named in the chart's legend. Refreshed while any of
the runs is live."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from workbench.services.compare import last_and_best
from workbench.formatting import short_value
from workbench.tui.cells import cell, escape, status_cell
from workbench.tui.screens.base import BaseScreen
from workbench.tui.widgets.compare_chart import CompareChart, run_colour

BUCKETS = 160  # points per curve: more than a chart at 80 columns can show (2 dots a cell)


class CompareLoaded(Message):
    def __init__(self, data: Any, error: str | None) -> None:
        super().__init__()
        self.data, self.error = data, error


class CompareScreen(BaseScreen):
    MODE = "runs"
    BINDINGS = [Binding("escape", "back", "Back", id="compare.back")]
    DEFAULT_CSS = """
    CompareScreen #compare-title { height: 1; padding: 0 1; background: $boost; }
    CompareScreen #compare-table { height: auto; max-height: 12; }
    CompareScreen #compare-charts { height: 1fr; }
    """

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.data: Any = None  # the facade's Comparison, as last loaded

    def compose_body(self) -> ComposeResult:
        yield Static(f"comparing {len(self.run_ids)} runs", id="compare-title")
        with VerticalScroll(id="compare-charts"):
            yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)

    def reload(self) -> None:
        if self.data is None or any(r.status in ("queued", "running") for r in self.data.runs):
            self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare")
    def load(self) -> None:
        try:
            self.post_message(CompareLoaded(self.workbench.compare(self.run_ids, BUCKETS), None))
        except Exception as exc:  # noqa: BLE001 - shown on the screen (a run removed meanwhile)
            self.post_message(CompareLoaded(None, getattr(exc, "message", None) or str(exc)))

    async def on_compare_loaded(self, message: CompareLoaded) -> None:
        title = self.query_one("#compare-title", Static)
        if message.error:
            title.update(f"[b red]{escape(message.error)}[/]")
            return
        data = self.data = message.data
        assert data is not None
        runs = data.runs
        title.update("comparing " + "  ".join(f"[{run_colour(i)}]━[/] [b]{escape(r.id)}[/b] "
                                              f"{escape(r.project)}/{escape(r.experiment)}"
                                              for i, r in enumerate(runs)))
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        table.add_column("", key="what")
        for i, run in enumerate(runs):
            table.add_column(Text(run.id, style=f"bold {run_colour(i)}"), key=run.id)
        table.add_row(cell("status"), *(status_cell(r.status) for r in runs), key="status")
        table.add_row(cell("checks"), *(cell(r.verdict or "-", "green" if r.verdict == "pass" else
                                             "red" if r.verdict == "fail" else "") for r in runs), key="checks")
        for name, values in data.params_differ.items():
            table.add_row(cell(name), *(cell(short_value(v)) for v in values), key=f"param:{name}")
        for name, metric in data.metrics.items():
            way = "min" if metric.lower_is_better else "max"
            last, best = last_and_best(metric)
            table.add_row(cell(f"{name} last"), *(cell(text) for text in last), key=f"last:{name}")
            table.add_row(cell(f"{name} {way}"), *(cell(text, "bold green" if r.id == metric.best_run else "")
                                                   for text, r in zip(best, metric.runs)), key=f"best:{name}")
        charts = self.query_one("#compare-charts", VerticalScroll)
        await charts.query(CompareChart).remove()
        await charts.mount_all(CompareChart(name, [{"id": r.id, "series": r.series} for r in metric.runs])
                               for name, metric in data.metrics.items())

    def action_back(self) -> None:
        self.app.pop_screen()
