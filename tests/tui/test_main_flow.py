"""The main flow for real: add a project, launch it from the Projects screen, watch it succeed in Runs,
open it, see its metrics and logs. Real Docker engine, real background follower, real SQLite."""

from __future__ import annotations

import time

import pytest
from textual.widgets import DataTable, Log

from helpers import SAMPLES
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.launch_form import LaunchForm
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.widgets.metric_chart import MetricChart


async def wait_until(app, pilot, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        if predicate():
            return
    raise AssertionError("condition not met in time")


@pytest.mark.usefixtures("docker_client")
async def test_launch_from_projects_to_succeeded_run_with_metrics_and_logs(wb):
    app = WorkbenchApp(wb)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3", "a")
        await pilot.pause()
        await pilot.press(*str(SAMPLES / "hello-shell"), "enter")
        projects = app.screen
        await wait_until(app, pilot, lambda: projects.query_one("#projects-table", DataTable).row_count == 1)
        projects.query_one("#projects-table", DataTable).focus()
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LaunchForm)
        steps = app.screen.query_one("#param-steps")
        steps.value = "5"
        await pilot.press("ctrl+s")
        await wait_until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen))
        detail = app.screen
        await wait_until(app, pilot, lambda: detail.run is not None and detail.run.status == "succeeded")
        assert detail.run.params == {"greeting": "hello", "steps": 5}
        await pilot.press("L")
        await wait_until(app, pilot, lambda: any("hello from" in line for line in detail.query_one(Log).lines))
        await pilot.press("m")
        await wait_until(app, pilot, lambda: any(c.data.get("points") == 5 for c in detail.query(MetricChart)))
        await pilot.press("escape")
        await wait_until(app, pilot, lambda: app.screen.query_one("#runs-table", DataTable).row_count == 1)
        table = app.screen.query_one("#runs-table", DataTable)
        assert "succeeded" in str(table.get_cell(detail.run_id, "status"))
