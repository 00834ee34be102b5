"""The full-screen app. This first version shows the run history live; the Dashboard, Machines, Projects,
Models and Deployments screens arrive with their issues."""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

REFRESH_SECONDS = 2.0
PAGE = 500
STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "yellow", "queued": "cyan",
                "cancelled": "magenta", "lost": "bright_black"}
COLUMNS = ("id", "status", "project/experiment", "params", "metrics", "started", "duration")


class RunsLoaded(Message):
    def __init__(self, runs: list[dict[str, Any]], total: int) -> None:
        super().__init__()
        self.runs = runs
        self.total = total


def _cells(run: dict[str, Any], now: float) -> tuple[str, ...]:
    started = run["started_at"] or run["created_at"]
    duration = ((run["finished_at"] or now) - run["started_at"]) if run["started_at"] else None
    style = STATUS_STYLE.get(run["status"], "")
    params = " ".join(f"{k}={v}" for k, v in list(run["params"].items())[:3])
    metrics = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in list(run["summary"].items())[:2])
    return (run["id"], f"[{style}]{run['status']}[/]", f"{run['project']}/{run['experiment']}", params, metrics,
            time.strftime("%m-%d %H:%M:%S", time.localtime(started)),
            "-" if duration is None else f"{max(0.0, duration):.1f}s")


class WorkbenchApp(App[None]):
    TITLE = "Workbench"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("r", "refresh", "Refresh", id="runs.refresh"),
        Binding("j", "cursor_down", "Down", show=False, id="runs.down"),
        Binding("k", "cursor_up", "Up", show=False, id="runs.up"),
    ]
    CSS = "#summary { height: 1; padding: 0 1; color: $text-muted; } DataTable { height: 1fr; }"

    def __init__(self, workbench: Any) -> None:
        super().__init__()
        self.workbench = workbench

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading runs…", id="summary")
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self.action_refresh)

    def action_refresh(self) -> None:
        self.load_runs()

    def action_cursor_down(self) -> None:
        self.query_one(DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(DataTable).action_cursor_up()

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs")
    def load_runs(self) -> None:
        self.workbench.reconcile()
        runs = self.workbench.store.list_runs(limit=PAGE)
        self.post_message(RunsLoaded(runs, self.workbench.store.count_runs()))

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        table = self.query_one(DataTable)
        now = time.time()
        wanted = {run["id"]: _cells(run, now) for run in message.runs}
        with self.batch_update():
            for key in [k for k in table.rows if k.value not in wanted]:
                table.remove_row(key)
            for index, (run_id, cells) in enumerate(wanted.items()):
                if run_id in table.rows:
                    for column, value in zip(COLUMNS, cells):
                        if table.get_cell(run_id, column) != value:
                            table.update_cell(run_id, column, value)
                else:
                    table.add_row(*cells, key=run_id)
            if len(table.rows) and list(table.rows)[0].value != message.runs[0]["id"]:
                table.sort("started", reverse=True)
        shown = len(message.runs)
        self.query_one("#summary", Static).update(
            f"{message.total} runs" + (f" (newest {shown} shown)" if shown < message.total else "")
            if message.total else "no runs yet: start one with `workbench run PATH`")


def run_app(workbench: Any) -> int:
    WorkbenchApp(workbench).run()
    return 0
