"""Every sweep, newest first (W on the Runs screen): status, what it sweeps, progress, best trial, cost.
Enter opens one."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from workbench.formatting import money
from workbench.tui.cells import cell, status_cell
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.screens.sweep import SweepScreen, progress_text
from workbench.tui.widgets.cursor import cursor_key

COLUMNS = ("sweep", "status", "project/experiment", "method", "progress", "best", "cost")


class SweepsLoaded(Message):
    def __init__(self, sweeps: list[Any]) -> None:
        super().__init__()
        self.sweeps = sweeps


class SweepsScreen(BaseScreen):
    MODE = "runs"
    BINDINGS = [
        Binding("escape", "back", "Back", id="sweeps.back"),
        Binding("enter", "open", "Open sweep", id="sweeps.open"),
        Binding("j", "down", "Down", show=False, id="sweeps.down"),
        Binding("k", "up", "Up", show=False, id="sweeps.up"),
    ]
    DEFAULT_CSS = """
    SweepsScreen #sweeps-hint { height: 1; padding: 0 1; color: $text-muted; }
    SweepsScreen DataTable { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def compose_body(self) -> ComposeResult:
        yield Static("loading sweeps…", id="sweeps-hint")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="sweeps-table")
        for label in COLUMNS:
            table.add_column(label, key=label)
        yield table

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#sweeps-table", DataTable)

    def reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweeps")
    def load(self) -> None:
        self.post_message(SweepsLoaded(self.workbench.sweeps()))

    def on_sweeps_loaded(self, message: SweepsLoaded) -> None:
        self.loads += 1
        table = self.table
        selected = self.selected()
        with self.app.batch_update():
            table.clear()
            for s in message.sweeps:
                table.add_row(cell(s.id), status_cell(s.status), cell(f"{s.project}/{s.experiment}"),
                              cell(s.method), cell(progress_text(s)), cell(s.best or "-"),
                              cell(money(s.cost)), key=s.id)
            if selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected))
        self.query_one("#sweeps-hint", Static).update(
            f"{len(message.sweeps)} sweep(s) · enter opens one" if message.sweeps else
            "no sweeps yet: start one with `workbench sweep PATH -e EXPERIMENT`")

    def selected(self) -> str | None:
        return cursor_key(self.table)

    def action_open(self) -> None:
        sweep_id = self.selected()
        if sweep_id:
            self.app.push_screen(SweepScreen(sweep_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_down(self) -> None:
        self.table.action_cursor_down()

    def action_up(self) -> None:
        self.table.action_cursor_up()

    def action_back(self) -> None:
        self.app.pop_screen()

    def palette_commands(self) -> list[PaletteCommand]:
        return [("Open sweep", "its trials by objective and a scatter per param", self.action_open)]
