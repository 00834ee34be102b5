"""Issue 22 on the Runs screen, Pilot at 80×24 over a real database: `o` cycles a stable list of sort keys taken
from the filtered history (item 4) with the key's values in a column while it sorts; the header, footer and
status line read whole at 80 columns (item 16)."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from fixture_db import NOW
from test_run_screens import add_run, open_runs, settle
from workbench.tui.app import WorkbenchApp
from workbench.formatting import short_value

SIZE = (80, 24)


def drawn(app) -> list[str]:
    """The screen's rows as the terminal shows them."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def column_labels(app) -> list[str]:
    table = app.screen.query_one("#runs-table", DataTable)
    return [str(column.label) for column in table.columns.values() if column.width]


# item 4 ------------------------------------------------------------------------------------------------
async def test_o_cycles_every_param_and_metric_of_the_filtered_history_then_newest_first(seeded):
    wb = seeded
    for i in range(120):  # a full page of newer runs without params or metrics ...
        add_run(wb, f"n{i:07d}", created=NOW + 100 + i)
    old = add_run(wb, "oldwarm", params={"warmup": 3}, created=NOW - 90_000)  # ... over one far down the history
    wb._services.store.update_run("oldwarm", summary={"f1": 0.5})
    assert old
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        sorts = []
        for _ in range(7):
            await pilot.press("o")
            await settle(app, pilot)
            sorts.append(app.screen.query_state.sort)
            if sorts[-1] == "metric:acc":  # while a metric sorts, a column shows its values
                assert "acc" in column_labels(app)
                table = app.screen.query_one("#runs-table", DataTable)
                first = [key.value for key in table.rows][0]
                acc = wb._services.store.get_run(first)["summary"]["acc"]
                assert str(table.get_cell(first, "sort-value")) == short_value(acc)
                assert "acc" in drawn(app)[3].split()  # the table's header row
        assert sorts == ["param:epochs", "param:lr", "param:warmup", "metric:acc", "metric:f1", "metric:loss",
                         "created"]
        assert app.screen.query_state.descending
        assert "sort-value" not in app.screen.query_one("#runs-table", DataTable).columns

        # the list is the filtered history's: under a filter that leaves out the old run, its keys are gone
        await pilot.press("slash", *"epochs=15", "enter")
        await settle(app, pilot)
        sorts = []
        for _ in range(5):
            await pilot.press("o")
            await settle(app, pilot)
            sorts.append(app.screen.query_state.sort)
        assert sorts == ["param:epochs", "param:lr", "metric:acc", "metric:loss", "created"]


# item 16 -----------------------------------------------------------------------------------------------
async def test_header_footer_and_status_read_whole_at_80_columns(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        await pilot.press("p")  # a project filter
        await settle(app, pilot)
        await pilot.press("space", "space")  # two runs marked for compare
        await settle(app, pilot)
        rows = drawn(app)
        status, header, footer = rows[2], rows[3], rows[-1]
        assert "2 marked (C compares)" in status and "project hello-shell" in status, status
        table = app.screen.query_one("#runs-table", DataTable)
        for column in table.ordered_columns:  # every column's label whole in its width ...
            if column.width:
                assert len(str(column.label)) <= column.width, (str(column.label), column.width)
                assert str(column.label) in header  # ... and drawn
        assert "project/exp" in header
        assert "q Quit" in footer and "? Help" in footer, footer


# item 5 ------------------------------------------------------------------------------------------------
CHECKS = [{"metric": "val_acc", "op": ">=", "threshold": 0.9, "on": "last"}]


def add_checked_runs(wb) -> list[str]:
    """Six runs of one experiment: four params of which only lr differs, three metrics of which the
    experiment's check reads the last."""
    ids = []
    for i in range(6):
        run_id = f"chk{i:05d}"
        wb._services.store.insert_run({
            "id": run_id, "project": "char-model", "project_path": "/p", "experiment": "train-small",
            "status": "succeeded", "machine": "local", "executor": "process", "created_at": NOW + i,
            "started_at": NOW + i, "finished_at": NOW + i + 90, "exit_code": 0, "verdict": "pass",
            "params": {"batch_size": 64, "epochs": 10, "hidden": 128, "lr": round(0.1 / (i + 1), 4)},
            "summary": {"loss": 1.5 - i / 10, "train_time": 80.25 + i, "val_acc": 0.9 + i / 100},
            "spec": {"checks": CHECKS}})
        ids.append(run_id)
    return ids


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_runs_table_shows_the_differing_param_and_the_checked_metric_first(wb, size):
    from test_reading import column_text, lines

    ids = add_checked_runs(wb)
    app = WorkbenchApp(wb, clock=lambda: NOW + 100)
    async with app.run_test(size=size) as pilot:
        await open_runs(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        shown = {line.split()[0]: line for line in lines(table)[1:] if line.split()}
        assert set(shown) == set(ids)
        visible = [c.key.value for c in table.ordered_columns if c.width]
        assert {"params", "metrics", "project/experiment"} <= set(visible)
        for run_id, line in shown.items():
            params, metrics = column_text(table, line, "params"), column_text(table, line, "metrics")
            assert params.startswith("lr="), (size, params)
            assert metrics.startswith("✓ val_acc="), (size, metrics)
            for key in visible:  # never a cell of only `…`
                assert column_text(table, line, key).removeprefix("✓ ") not in ("…", ""), (size, key, line)
        widths = {c.key.value: c.width for c in table.ordered_columns}
        assert widths["metrics"] >= widths["project/experiment"]  # metrics get room before the names
