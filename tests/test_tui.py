"""The app over a real database: runs appear, live, without blocking the event loop."""

from __future__ import annotations

import time

from workbench.services import Workbench
from workbench.tui.app import WorkbenchApp


async def test_runs_table_shows_the_history(home):
    wb = Workbench()
    for i in range(3):
        wb.store.insert_run({"id": f"run{i}", "project": "demo", "project_path": "/p", "experiment": "train",
                             "status": "succeeded" if i else "failed", "machine": "local", "executor": "process",
                             "created_at": time.time() + i, "started_at": time.time() + i,
                             "finished_at": time.time() + i + 2, "params": {"lr": 0.1 * (i + 1)}})
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("DataTable")
        assert [k.value for k in table.rows] == ["run2", "run1", "run0"]
        assert "failed" in str(table.get_cell("run0", "status"))
        wb.store.insert_run({"id": "run3", "project": "demo", "project_path": "/p", "experiment": "train",
                             "status": "running", "machine": "local", "executor": "process",
                             "created_at": time.time() + 10})
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "run3" in [k.value for k in table.rows]
        await pilot.press("j", "q")
