"""The Dashboard at 80×24 (issue 22 item 19): Recent results in the order the runs finished, newest first."""

from __future__ import annotations

from textual.widgets import DataTable

from fixture_db import NOW
from test_run_screens import settle
from workbench.tui.app import WorkbenchApp


async def test_recent_results_are_in_finish_order(seeded):
    # a long run created before every seeded run, finished after all of them; a quick one created last,
    # finished first
    for run_id, created, finished in (("longrun1", NOW - 7200, NOW - 60), ("quickrun", NOW - 30, NOW - 7000)):
        seeded._services.store.insert_run({"id": run_id, "project": "p", "project_path": "/p", "experiment": "e",
                                 "status": "succeeded", "machine": "local", "executor": "process",
                                 "created_at": created, "started_at": created, "finished_at": finished})
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        recent = app.screen.query_one("#recent", DataTable)
        shown = [key.value for key in recent.rows]
        finished = {r["id"]: r["finished_at"] for r in seeded._services.store.list_runs(limit=None)}
        assert shown[0] == "longrun1"
        assert [finished[run_id] for run_id in shown] == sorted((finished[r] for r in shown), reverse=True)
        assert str(recent.get_cell("longrun1", recent.ordered_columns[-1].key)).strip() == "1m ago"
