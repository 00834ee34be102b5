"""Issue 22, item 12: after a launch from Projects the app shows the run's detail; number keys go to a
screen's root (the Runs list, never a detail left open there); one detail at a time, so `esc` never walks back
through earlier launches. Pilot at 80×24, a real engine and real launches."""

from __future__ import annotations

import time

import pytest
from textual.widgets import DataTable

from helpers import SAMPLES
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.launch_form import LaunchForm
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.screens.runs import RunsScreen

pytestmark = pytest.mark.usefixtures("docker_client")


async def wait_until(app, pilot, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)
        if predicate():
            return
    raise AssertionError("condition not met in time")


async def launch_from_projects(app, pilot) -> str:
    """`3`, l on hello-shell's experiment, ctrl+s in the form; the run detail it opens."""
    await pilot.press("3")
    key = "hello-shell"
    await wait_until(app, pilot, lambda: any(k.value.startswith(key) for k in
                                             app.screen.query_one("#projects-table", DataTable).rows))
    table = app.screen.query_one("#projects-table", DataTable)
    table.focus()
    table.move_cursor(row=[k.value for k in table.rows].index(next(k.value for k in table.rows
                                                                    if k.value.startswith(key))))
    await pilot.press("l")
    await wait_until(app, pilot, lambda: isinstance(app.screen, LaunchForm))
    await pilot.press("ctrl+s")
    before = [s for s in app.screen_stack if isinstance(s, RunDetailScreen)]
    await wait_until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen not in before)
    assert app.current_mode == "runs"
    return app.screen.run_id


async def test_number_keys_go_to_the_root_and_one_detail_shows_at_a_time(wb):
    wb.add_project(str(SAMPLES / "hello-shell"))
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        first = await launch_from_projects(app, pilot)
        second = await launch_from_projects(app, pilot)
        assert second != first
        assert [type(s) for s in app.screen_stack] == [RunsScreen, RunDetailScreen]  # the first detail is gone
        await pilot.press("escape")  # back to the list, not to the first launch's detail
        await wait_until(app, pilot, lambda: isinstance(app.screen, RunsScreen))

        await pilot.press("enter")  # a detail opened from the list ...
        await wait_until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen))
        await pilot.press("4")  # ... and `4` there goes to the list
        await wait_until(app, pilot, lambda: isinstance(app.screen, RunsScreen))

        await launch_from_projects(app, pilot)
        await pilot.press("1")
        await wait_until(app, pilot, lambda: app.current_mode == "dashboard")
        await pilot.press("4")  # from elsewhere: the list, not the detail left open
        await wait_until(app, pilot, lambda: isinstance(app.screen, RunsScreen))
        assert len(app.screen_stack) == 1

        await launch_from_projects(app, pilot)  # `[` and `]` land on a screen's root too
        await pilot.press("right_square_bracket", "left_square_bracket")
        await wait_until(app, pilot, lambda: app.current_mode == "runs" and isinstance(app.screen, RunsScreen))
        assert len(app.screen_stack) == 1
