"""Issue 22, item 19: a chart's header and its axis tell the same history. A metric of 1,000 points at steps
0–999, downsampled to 240 buckets, read "(1,000 points)" over an axis ending at step 996 (the last bucket's
first step). Pilot at 80×24 over a real database, the run detail's Metrics tab."""

from __future__ import annotations

from fixture_db import NOW
from test_run_screens import add_run, settle, until
from workbench.store.ingest import MetricBatch, Offset
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.widgets.metric_chart import MetricChart


async def test_the_chart_axis_ends_at_the_last_step_its_header_counts(wb):
    seq = add_run(wb, "chart001")
    loss = wb._services.store.key_id("loss")
    rows = [(loss, step, NOW + step, 1.0 / (step + 1)) for step in range(1000)]
    wb._services.store.commit_metrics(seq, MetricBatch(rows, 0, 0, {"loss": rows[-1][3]}), Offset("0", 1000, 0))
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(RunDetailScreen("chart001"))
        await until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run is not None)
        await pilot.press("m")
        await settle(app, pilot)
        chart = app.screen.query_one(MetricChart)
        assert "(1,000 points)" in chart.border_title
        axis = chart.render().plain.splitlines()[-1].split()
        assert axis[-3:] == ["└step", "0", "999"], axis
