"""Issue 14, item 1 in the app: a live run's current progress line (its tqdm bar, kept by its follower in
`runs/<id>/progress.txt`) shows in the run detail, above the log and atop the overview, and in the
Dashboard's running list; it follows the file, and goes when the file goes. Pilot at 80×24 over a real
database; the refresh timers pick the changes up (no manual reload)."""

from __future__ import annotations

import threading
import time

from textual.widgets import DataTable, Static
from textual.worker import WorkerCancelled, WorkerFailed

from fixture_db import NOW
from workbench.execution.ingest import PROGRESS_FILE
from workbench.store.leases import lease_name
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.run_detail import RunDetailScreen

SIZE = (80, 24)
BAR = "training:  42%|████▏     | 168/400"
LATER = "training:  77%|███████▋  | 308/400"


async def settle(app, pilot) -> None:
    try:
        await app.workers.wait_for_complete()
    except (WorkerFailed, WorkerCancelled):
        pass  # a failure reaches the app's handler; an exclusive worker may be replaced by a newer one
    await pilot.pause()


async def until(app, pilot, predicate, timeout: float = 5.0) -> None:
    """Within a few 1 s refreshes, by the screens' own timers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await settle(app, pilot)
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


def add_running(wb, run_id: str) -> None:
    """A live run that a follower owns (it holds the run's lease, and keeps the progress file): the app only
    reads it, never ingests it nor marks it lost."""
    wb._services.store.insert_run({
        "id": run_id, "project": "p", "project_path": "/p", "experiment": "train", "status": "running",
        "machine": "local", "executor": "process", "created_at": NOW, "started_at": NOW, "params": {},
    })
    wb.dirs.run_dir(run_id).mkdir(parents=True, exist_ok=True)
    assert wb._services.store.acquire_lease(lease_name(run_id), "a-follower", ttl=300)


def write_progress(wb, run_id: str, line: str) -> None:
    (wb.dirs.run_dir(run_id) / PROGRESS_FILE).write_text(line, encoding="utf-8")


def shown(static: Static) -> str:
    """The row as drawn: what the user sees, cut to the widget's width."""
    return static.render_line(0).text.strip() if static.display and static.size.height else ""


def latest_cell(app, run_id: str) -> str:
    table = app.screen.query_one("#live", DataTable)
    return str(table.get_row(run_id)[-1]) if run_id in [k.value for k in table.rows] else ""


def spy_threads(wb) -> list[bool]:
    """Records, for each progress_line call, whether it ran on the event loop's thread."""
    on_main: list[bool] = []
    real = wb.progress_line

    def spy(ref):
        on_main.append(threading.current_thread() is threading.main_thread())
        return real(ref)

    wb.progress_line = spy
    return on_main


async def test_the_run_detail_shows_the_live_progress_line_and_follows_it(wb):
    add_running(wb, "tqdm0001")
    write_progress(wb, "tqdm0001", BAR)
    on_main = spy_threads(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(RunDetailScreen("tqdm0001"))
        await settle(app, pilot)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        overview = detail.query_one("#overview-progress", Static)
        await until(app, pilot, lambda: shown(overview) == BAR)  # atop the overview, the tab that opens
        await pilot.press("L")
        await pilot.pause()
        progress = detail.query_one("#progress", Static)
        log = detail.query_one("#log")
        assert shown(progress) == BAR
        assert progress.region.height == 1 and progress.region.bottom == log.region.y  # directly above the log
        assert app.focused is log  # the log still takes the keys

        write_progress(wb, "tqdm0001", LATER)  # the follower redrew it
        await until(app, pilot, lambda: shown(progress) == LATER)

        # brackets are text, never markup; a line wider than the pane is cut with …, never wrapped
        wide = "epoch [3/10] [bold]" + "=" * 200 + "> loss=0.25"
        write_progress(wb, "tqdm0001", wide)
        await until(app, pilot, lambda: shown(progress).startswith("epoch [3/10] [bold]==="))
        assert shown(progress).endswith("…") and progress.region.height == 1
        assert len(shown(progress)) <= SIZE[0]

        top = progress.region.y
        (wb.dirs.run_dir("tqdm0001") / PROGRESS_FILE).unlink()  # the bar is gone: so is the row
        await until(app, pilot, lambda: not progress.display and not overview.display and log.region.y == top)
    assert on_main and not any(on_main)  # read in the screen's worker, never on the event loop


async def test_a_run_that_ended_shows_no_progress_line(wb):
    add_running(wb, "tqdm0002")
    write_progress(wb, "tqdm0002", BAR)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(RunDetailScreen("tqdm0002"))
        await settle(app, pilot)
        progress = app.screen.query_one("#progress", Static)
        await pilot.press("L")
        await until(app, pilot, lambda: shown(progress) == BAR)
        wb._services.store.finish_run("tqdm0002", "succeeded", exit_code=0, reason=None)  # a stale file left behind is not shown
        await until(app, pilot, lambda: not progress.display)


async def test_the_dashboard_running_list_shows_the_progress_line(wb):
    add_running(wb, "tqdm0003")
    add_running(wb, "plain004")  # no progress line: its latest metrics, as before
    write_progress(wb, "tqdm0003", BAR)
    on_main = spy_threads(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, DashboardScreen)
        await until(app, pilot, lambda: latest_cell(app, "tqdm0003") == BAR)
        assert latest_cell(app, "plain004") == ""
        table = app.screen.query_one("#live", DataTable)
        drawn = [table.render_line(y).text for y in range(table.size.height)]
        assert any("tqdm0003" in row and "training:  42%" in row for row in drawn), drawn  # as drawn at 80 columns

        write_progress(wb, "tqdm0003", LATER)
        await until(app, pilot, lambda: latest_cell(app, "tqdm0003") == LATER)

        (wb.dirs.run_dir("tqdm0003") / PROGRESS_FILE).unlink()
        await until(app, pilot, lambda: latest_cell(app, "tqdm0003") == "")
    assert on_main and not any(on_main)
