"""Compare in the app (issue 11): mark runs on the Runs screen with space, press C: the params that differ,
each metric's last and best with the best run's in bold green, the checks, and one chart per metric with a
curve per run in its own colour, at 80×24."""

from __future__ import annotations

from textual.widgets import DataTable

from fixture_db import NOW
from test_run_screens import add_run, open_runs, settle, until
from workbench.store.ingest import MetricBatch, Offset
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.widgets.compare_chart import CompareChart


def runs_with_metrics(wb) -> None:
    for i, (lr, acc) in enumerate([(0.1, 0.90), (0.3, 0.80), (0.03, 0.95)]):
        seq = add_run(wb, f"cmp{i}0000", params={"lr": lr, "epochs": 5}, created=NOW - 100 + i)
        acc_key, loss_key = wb._services.store.key_id("acc"), wb._services.store.key_id("loss")
        points = [(acc_key, s, NOW, acc * s / 10) for s in range(1, 11)]
        points += [(loss_key, s, NOW, 1 / (s * (i + 1))) for s in range(1, 11)]
        wb._services.store.commit_metrics(seq, MetricBatch(points, len(points), 0, {}), Offset("1", len(points), 0))


async def test_marked_runs_compare_side_by_side(wb):
    runs_with_metrics(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_runs(app, pilot)
        await pilot.press("C")  # nothing marked: a hint, no screen
        await settle(app, pilot)
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("space", "space", "space")  # marks the three, moving down each time
        await settle(app, pilot)
        assert app.screen.marked == ["cmp20000", "cmp10000", "cmp00000"]
        await pilot.press("space")  # the cursor stayed on the last row: unmarks it
        assert app.screen.marked == ["cmp20000", "cmp10000"]
        await pilot.press("C")
        await until(app, pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.data is not None)
        table = app.screen.query_one("#compare-table", DataTable)
        rows = {key.value: table.get_row(key) for key in table.rows}
        assert [str(c) for c in rows["param:lr"][1:]] == ["0.03", "0.3"]
        assert "param:epochs" not in rows  # the same in both: not a difference
        best = rows["best:acc"]
        assert [str(c) for c in best[1:]] == ["0.95000", "0.80000"] and "green" in str(best[1].style)
        assert "green" in str(rows["best:loss"][1].style) and "green" not in str(rows["best:loss"][2].style)
        await settle(app, pilot)
        charts = list(app.screen.query(CompareChart))
        assert [c.metric for c in charts] == ["acc", "loss"]
        assert len(charts[0].runs) == 2 and "cmp20000" in str(charts[0].border_subtitle)
        drawn = charts[0].render()
        styles = {str(span.style) for span in drawn.spans}
        assert {"red", "green"} <= styles  # one colour per run
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, CompareScreen)


def test_compare_refuses_one_run_and_a_run_named_twice(wb):
    import pytest

    from workbench.errors import WorkbenchError

    runs_with_metrics(wb)
    with pytest.raises(WorkbenchError, match="two runs or more"):
        wb.compare(["cmp00000"])
    with pytest.raises(WorkbenchError, match="named twice"):
        wb.compare(["cmp00000", "cmp0"])


async def test_the_run_detail_says_where_a_run_was_placed_and_what_it_cost(wb):
    from textual.widgets import Static

    from workbench.tui.screens.run_detail import RunDetailScreen

    wb._services.store.insert_run({"id": "paid0001", "project": "p", "project_path": "/p", "experiment": "e",
                         "status": "succeeded", "machine": "gpu-a", "executor": "docker", "created_at": NOW - 3600,
                         "started_at": NOW - 3600, "finished_at": NOW, "hourly_cost": 2.0, "gpu_share": 0.5,
                         "placement": {"request": {}, "machine": "gpu-a", "reason": "gpu-a: 2 of 4 GPUs free, $2.00/h"}})
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(RunDetailScreen("paid0001"))
        await until(app, pilot, lambda: "cost" in str(app.screen.query_one("#overview-text", Static).render()))
        text = str(app.screen.query_one("#overview-text", Static).render())
        assert "placed     gpu-a: 2 of 4 GPUs free, $2.00/h" in text
        assert "cost       $1.00 ($2.00/h × 50% of gpu-a)" in text


async def test_each_metric_has_the_cli_precision(wb):
    """Issue 22, item 17 in the app: a metric's numbers in one precision, the rule `runs compare` uses
    (services.compare.figures over every run's last and best), not `.4g` per cell (0.95 0.9512 1)."""
    for i, (acc, tokens) in enumerate([(0.95, 500), (0.951234, 500), (1.0, 500)]):
        seq = add_run(wb, f"prc{i}0000", params={"acc": acc}, created=NOW - 100 + i)
        points = [(wb._services.store.key_id("acc"), 1, NOW, acc), (wb._services.store.key_id("tokens"), 1, NOW, tokens)]
        wb._services.store.commit_metrics(seq, MetricBatch(points, len(points), 0, {}), Offset("1", len(points), 0))
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(CompareScreen(["prc00000", "prc10000", "prc20000"]))
        await until(app, pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.data is not None)
        table = app.screen.query_one("#compare-table", DataTable)
        rows = {key.value: [str(c) for c in table.get_row(key)[1:]] for key in table.rows}
        assert rows["last:acc"] == ["0.9500", "0.9512", "1.0000"], rows
        assert rows["best:acc"] == ["0.9500", "0.9512", "1.0000"]
        assert rows["last:tokens"] == ["500", "500", "500"]
