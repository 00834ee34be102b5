"""Issue 14, item 5 and the display part of item 3, driven by Pilot over a real database: the run detail's
Logs and Metrics tabs take the movement keys as soon as they open (at 100×30 and 80×24), `g`/`G` on the Runs
screen move the cursor to the newest/oldest run, a run launched from the app is the selected row when the
user goes back, and a run that did not succeed shows its declared checks as not evaluated."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Log, Static, TabbedContent

from fixture_db import NOW
from test_run_screens import add_run, open_runs, row_keys, settle, until, write_log
from workbench.store.ingest import MetricBatch, Offset
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.screens.runs import PAGE, RunsScreen

METRICS = ("loss", "acc", "lr", "grad_norm")


def add_charted_run(wb, run_id: str = "charted1", log_lines: int = 400) -> None:
    """A finished run with 4 metrics (4 charts: more than fit at 30 rows) and a log longer than the screen."""
    seq = add_run(wb, run_id)
    keys = {name: wb._services.store.key_id(name) for name in METRICS}
    rows = [(keys[name], s, NOW + s, float(s * (i + 1))) for i, name in enumerate(METRICS) for s in range(30)]
    wb._services.store.commit_metrics(seq, MetricBatch(rows, 0, 0, {name: 29.0 * (i + 1) for i, name in enumerate(METRICS)}),
                            Offset("0", 30, 0))
    path = wb.dirs.run_dir(run_id) / "logs.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_log(path, 0, log_lines)


async def open_detail(app, pilot) -> RunDetailScreen:
    await open_runs(app, pilot)
    await pilot.press("enter")
    await settle(app, pilot)
    detail = app.screen
    assert isinstance(detail, RunDetailScreen)
    await until(app, pilot, lambda: len(detail.charts) == len(METRICS) and not detail._draining
                and len(detail.query_one(Log).lines) > 100)
    return detail


async def press(pilot, *keys: str) -> None:
    await pilot.press(*keys)
    await pilot.pause()
    await pilot.pause()


# item 5: the visible pane takes the keys when its tab opens ------------------------------------------
@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
async def test_metrics_tab_scrolls_with_keys_as_soon_as_it_opens(wb, size):
    add_charted_run(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=size) as pilot:
        detail = await open_detail(app, pilot)
        await press(pilot, "m")
        charts = detail.query_one("#charts")
        assert detail.query_one(TabbedContent).active == "metrics"
        assert app.focused is charts
        assert charts.max_scroll_y > 0  # not all 4 charts fit
        await press(pilot, "pagedown")
        paged = charts.scroll_y
        assert paged > 0
        await press(pilot, "up")
        assert charts.scroll_y == paged - 1
        await press(pilot, "down", "down")
        assert charts.scroll_y == min(paged + 1, charts.max_scroll_y)
        await press(pilot, "end")
        assert charts.scroll_y == charts.max_scroll_y
        await press(pilot, "pageup")
        assert charts.scroll_y < charts.max_scroll_y
        await press(pilot, "home")
        assert charts.scroll_y == 0


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
async def test_logs_tab_scrolls_with_keys_as_soon_as_it_opens(wb, size):
    add_charted_run(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=size) as pilot:
        detail = await open_detail(app, pilot)
        await press(pilot, "L")
        log = detail.query_one(Log)
        assert detail.query_one(TabbedContent).active == "logs"
        assert app.focused is log
        assert log.max_scroll_y > 0
        assert log.scroll_y == log.max_scroll_y  # following: the newest line in view
        await press(pilot, "pageup")
        paged = log.scroll_y
        assert paged < log.max_scroll_y
        await press(pilot, "up")
        assert log.scroll_y == paged - 1
        await press(pilot, "down")
        assert log.scroll_y == paged
        await press(pilot, "home")
        assert log.scroll_y == 0
        await press(pilot, "pagedown")
        assert log.scroll_y > 0
        await press(pilot, "end")
        assert log.scroll_y == log.max_scroll_y
        await press(pilot, "g")  # the vim keys of the other panes
        assert log.scroll_y == 0
        await press(pilot, "j", "j", "k")
        assert log.scroll_y == 1
        await press(pilot, "G")
        assert log.scroll_y == log.max_scroll_y


async def test_each_tab_takes_the_keys_however_it_opens(wb):
    """By its letter, by ←/→, and back and forth: the shown pane holds the focus every time."""
    add_charted_run(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        detail = await open_detail(app, pilot)
        panes = {"overview": "#overview-scroll", "logs": "#log", "metrics": "#charts"}
        for keys, tab in [(("m",), "metrics"), (("L",), "logs"), (("right",), "metrics"), (("right",), "overview"),
                          (("left",), "metrics"), (("left",), "logs"), (("o",), "overview"), (("m",), "metrics")]:
            await press(pilot, *keys)
            assert detail.query_one(TabbedContent).active == tab
            assert app.focused is detail.query_one(panes[tab]), (keys, tab, app.focused)


# item 5: g/G move the cursor on the Runs screen --------------------------------------------------------
async def test_g_and_G_move_the_cursor_to_the_newest_and_oldest_run(wb):
    for i in range(PAGE + 20):  # two pages
        add_run(wb, f"run{i:05d}", created=NOW - 10_000 + i)
    newest, oldest = f"run{PAGE + 19:05d}", "run00000"
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_runs(app, pilot)
        screen = app.screen
        table = screen.query_one("#runs-table", DataTable)
        assert screen.selected_run() == newest
        await press(pilot, "j", "j", "j")
        await settle(app, pilot)
        assert table.cursor_row == 3
        await press(pilot, "g")  # on the first page already: the cursor still goes to the newest run
        await settle(app, pilot)
        assert screen.selected_run() == newest and table.cursor_row == 0
        await press(pilot, "G")
        await settle(app, pilot)
        assert screen.selected_run() == oldest and screen.query_state.offset == PAGE
        await press(pilot, "k", "k")
        await settle(app, pilot)
        assert screen.selected_run() == "run00002"
        await press(pilot, "G")  # on the last page already
        await settle(app, pilot)
        assert screen.selected_run() == oldest
        await press(pilot, "g")
        await settle(app, pilot)
        assert screen.selected_run() == newest and screen.query_state.offset == 0
        await press(pilot, "j", "j", "home")  # home and end are the same keys
        await settle(app, pilot)
        assert screen.selected_run() == newest
        await press(pilot, "end")
        await settle(app, pilot)
        assert screen.selected_run() == oldest


# item 5: a run launched from the app is the selected row ---------------------------------------------
async def test_a_run_opened_after_a_launch_is_selected_when_going_back(seeded):
    wb = seeded
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_runs(app, pilot)
        await press(pilot, "j", "j")  # the cursor on an older run
        await settle(app, pilot)
        assert app.screen.selected_run() == "r0000003"
        add_run(wb, "launched", status="running", created=NOW + 60)  # what app._launch does, then:
        app._open_run("launched")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == "launched"
        await press(pilot, "escape")
        await settle(app, pilot)
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        await until(app, pilot, lambda: "launched" in row_keys(app))
        assert runs.selected_run() == "launched"
        await press(pilot, "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == "launched"


async def test_a_launch_from_another_screen_selects_the_run_on_the_runs_screen(seeded):
    """From the Dashboard (the Runs screen never shown yet, or shown and left on an older run)."""
    wb = seeded
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_runs(app, pilot)
        await press(pilot, "j", "j", "j")
        await settle(app, pilot)
        await press(pilot, "1")
        await settle(app, pilot)
        add_run(wb, "launched", status="running", created=NOW + 60)
        app._open_run("launched")
        await settle(app, pilot)
        await press(pilot, "escape")
        await until(app, pilot, lambda: isinstance(app.screen, RunsScreen) and "launched" in row_keys(app))
        assert app.screen.selected_run() == "launched"


async def test_select_goes_back_to_the_first_page_for_a_new_run(wb):
    for i in range(PAGE + 20):
        add_run(wb, f"run{i:05d}", created=NOW - 10_000 + i)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_runs(app, pilot)
        screen = app.screen
        screen.select("run00050")  # on the page shown: at once
        assert screen.selected_run() == "run00050"
        await press(pilot, "G")  # the oldest page, then a run is launched
        await settle(app, pilot)
        assert screen.query_state.offset == PAGE
        add_run(wb, "launched", status="running", created=NOW + 60)
        screen.select("launched")
        await until(app, pilot, lambda: screen.selected_run() == "launched")
        assert screen.query_state.offset == 0 and screen.table.cursor_row == 0


# item 3 (display): a run that did not succeed has its checks "not evaluated" -------------------------
async def test_a_cancelled_run_shows_its_checks_as_not_evaluated(wb):
    spec = {"checks": [{"metric": "acc", "op": ">=", "threshold": 0.9, "on": "last"},
                       {"metric": "loss", "op": "<", "threshold": 0.5, "on": "best"}]}
    wb._services.store.insert_run({
        "id": "stopped1", "project": "p", "project_path": "/p", "experiment": "e", "status": "cancelled",
        "status_reason": "cancelled by the user", "machine": "local", "executor": "process", "created_at": NOW,
        "started_at": NOW, "finished_at": NOW + 5, "params": {}, "spec": spec,
    })
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_runs(app, pilot)
        await press(pilot, "enter")
        await settle(app, pilot)
        detail = app.screen
        await until(app, pilot, lambda: detail.run is not None)
        text = str(detail.query_one("#overview-text", Static).render())
        assert "checks: not evaluated (the run did not succeed)" in text
        assert "acc >= 0.9" in text and "loss best < 0.5" in text
        assert "PASS" not in text.upper().replace("PASSED", "")
        table = (await _runs_table(app, pilot))
        assert "✓" not in str(table.get_cell("stopped1", "metrics"))


async def _runs_table(app, pilot) -> DataTable:
    await press(pilot, "escape")
    await settle(app, pilot)
    return app.screen.query_one("#runs-table", DataTable)


async def test_a_succeeded_run_without_a_verdict_says_nothing_of_not_evaluated(wb):
    spec = {"checks": [{"metric": "acc", "op": ">=", "threshold": 0.9, "on": "last"}]}
    wb._services.store.insert_run({
        "id": "fine0001", "project": "p", "project_path": "/p", "experiment": "e", "status": "succeeded",
        "machine": "local", "executor": "process", "created_at": NOW, "started_at": NOW, "finished_at": NOW + 5,
        "params": {}, "spec": spec,
    })
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_runs(app, pilot)
        await press(pilot, "enter")
        await settle(app, pilot)
        detail = app.screen
        await until(app, pilot, lambda: detail.run is not None)
        assert "not evaluated" not in str(detail.query_one("#overview-text", Static).render())
