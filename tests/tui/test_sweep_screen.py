"""The sweep view in the app (issue 11): from a trial on the Runs screen, w opens its sweep: progress, best
trial, cost; trials sorted by the objective, best first; a scatter per param. Cost shows per run on the
Runs screen and per project on the Projects screen."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from fixture_db import NOW
from test_run_screens import open_runs, settle, until
from workbench.store.ingest import MetricBatch, Offset
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.screens.sweep import SweepScreen
from workbench.tui.screens.sweeps import SweepsScreen

XS = [1.0, 3.0, 5.0, 2.0]  # objective acc = 10 - |x - 3|: trial 2 (x=3) is best


def sweep_with_trials(wb, rate: float | None = 4.0) -> None:
    wb._services.store.insert_sweep({"id": "swp00001", "project": "p", "project_path": "/p", "experiment": "e",
                           "method": "grid", "space": {"x": XS}, "base_params": {},
                           "options": {"trials": len(XS) + 1, "max_parallel": 2, "objective": "acc",
                                       "direction": "maximize", "budget": 50.0},
                           "request": {}, "experiment_spec": "{}", "snapshot": "s", "status": "running",
                           "created_at": NOW - 600})
    for trial, x in enumerate(XS + [4.0]):
        done = trial < len(XS)
        seq = wb._services.store.insert_run({
            "id": f"trial{trial:03d}", "project": "p", "project_path": "/p", "experiment": "e",
            "status": "succeeded" if done else "queued", "machine": "gpu-a" if done else "local",
            "executor": "docker", "created_at": NOW - 500 + trial, "started_at": NOW - 3600 if done else None,
            "finished_at": NOW if done else None, "params": {"x": x}, "sweep_id": "swp00001", "trial": trial,
            "hourly_cost": rate if done else None, "gpu_share": 0.25 if done else None,
            "waiting": None if done else "waiting for 1 free GPU on gpu-a"})
        if done:
            key = wb._services.store.key_id("acc")
            points = [(key, 1, NOW, 10 - abs(x - 3))]
            wb._services.store.commit_metrics(seq, MetricBatch(points, 1, 0, {"acc": 10 - abs(x - 3)}), Offset("1", 1, 0))


async def test_w_on_a_trial_opens_its_sweep_sorted_by_objective_with_scatters(wb):
    sweep_with_trials(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_runs(app, pilot)
        await pilot.press("w")
        await until(app, pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.loads)
        screen = app.screen
        table = screen.query_one("#sweep-trials", DataTable)
        order = [key.value for key in table.rows]
        assert order == ["trial001", "trial003", "trial000", "trial002", "trial004"]  # best first, no value last
        best = table.get_row("trial001")
        assert "green" in str(best[1].style) and str(best[-2]) == "10"
        assert str(best[-1]) == "$1.00"  # $4/h x 1 h x a quarter of the machine
        title = str(screen.query_one("#sweep-title", Static).render())
        assert "4/5 done" in title and "maximize acc" in title and "best trial001 = 10" in title
        assert "cost $4.00 of $50.00" in title
        scatter = str(screen.query_one("#sweep-scatters", Static).render())
        assert "acc by x" in scatter and scatter.count("●") == 4
        await pilot.press("enter")  # the best trial's run
        await until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen))
        assert app.screen.run_id == "trial001"
        await until(app, pilot, lambda: app.screen.run is not None)
        await pilot.press("w")  # back into its sweep from the run
        await until(app, pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.loads)
        await pilot.press("escape", "escape", "escape")
        await settle(app, pilot)
        await pilot.press("W")
        await until(app, pilot, lambda: isinstance(app.screen, SweepsScreen) and app.screen.loads)
        row = app.screen.query_one("#sweeps-table", DataTable).get_row("swp00001")
        assert [str(c) for c in row[3:]] == ["grid", "4/5 done (1 queued, 4 succeeded)", "trial001", "$4.00"]


async def test_cancel_from_the_sweep_view_asks_then_stops_the_sweep(wb):
    sweep_with_trials(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(SweepScreen("swp00001"))
        await until(app, pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.loads)
        await pilot.press("c")
        await settle(app, pilot)
        await pilot.press("y")
        await until(app, pilot, lambda: wb._services.store.get_run("trial004")["status"] == "cancelled")  # left the queue
        assert wb._services.store.get_sweep("swp00001")["status"] == "cancelled"
        assert wb._services.store.get_run("trial001")["status"] == "succeeded"


async def test_an_unknown_sweep_says_so_on_the_screen(wb):
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(SweepScreen("nosuch"))
        await until(app, pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.loads)
        assert "no sweep 'nosuch'" in str(app.screen.query_one("#sweep-title", Static).render())


async def test_cost_shows_on_the_runs_screen_only_where_runs_have_a_rate(wb):
    sweep_with_trials(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(120, 24)) as pilot:
        await open_runs(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.columns["cost"].width > 0
        assert str(table.get_cell("trial000", "cost")) == "$1.00" and str(table.get_cell("trial004", "cost")) == "-"
        await pilot.press("f")  # status filter: running only — no costed run on the page
        await settle(app, pilot)
        assert "cost" not in table.columns  # no run on the page has a rate: no column (not even its padding)


async def test_projects_screen_shows_what_each_project_spent(wb, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / "workbench.toml").write_text('[project]\nname = "p"\n[experiments.e]\nimage = "python:3.11-slim"\n'
                                            'command = ["python", "-c", "pass"]\n')
    wb.add_project(str(project))
    sweep_with_trials(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.press("3")
        await until(app, pilot, lambda: app.screen.query_one("#projects-table", DataTable).row_count)
        table = app.screen.query_one("#projects-table", DataTable)
        (key,) = list(table.rows)
        assert str(table.get_cell(key, "spent")) == "$4.00"


async def test_the_scatters_are_drawn_again_for_the_new_width_on_resize(wb):
    """Issue 22 item 7: an ended sweep is not reloaded, so the scatters drawn for a wide terminal wrapped
    at 80 columns until the view was opened again."""
    sweep_with_trials(wb)
    wb._services.store.update_run("trial004", status="cancelled", finished_at=NOW)
    wb._services.store.finish_sweep("swp00001", "cancelled", "cancelled by the user")
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(160, 40)) as pilot:
        app.push_screen(SweepScreen("swp00001"))
        await until(app, pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.loads)
        scatters = app.screen.query_one("#sweep-scatters", Static)
        wide = max(len(line) for line in str(scatters.render()).splitlines())
        assert wide > 80
        await pilot.resize_terminal(80, 24)
        await settle(app, pilot)
        drawn = str(scatters.render()).splitlines()
        assert "acc by x" in drawn[0] and sum(line.count("●") for line in drawn) == 4
        assert max(len(line) for line in drawn) <= scatters.content_region.width  # nothing wraps
        await pilot.resize_terminal(160, 40)
        await settle(app, pilot)
        assert max(len(line) for line in str(scatters.render()).splitlines()) == wide
        assert app.screen.loads == 1  # drawn again from what was loaded, not read again
