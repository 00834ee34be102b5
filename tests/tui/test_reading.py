"""Issue 9, items 12 and 13: what the tables and texts show can be read as it is. A `key=value` item is shown
whole or not at all (`…` says some were left out): 2000 never reads as 20, 0.9556 never as 0. The
Dashboard's columns use the width they have; the empty screens show `[deploy]` as written."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from rich.console import Console
from textual.widgets import DataTable, Static

from fixture_db import NOW
from test_run_screens import until
from workbench.tui.app import WorkbenchApp
from workbench.formatting import elide, fit_items, pairs, share_width
from workbench.tui.cells import cell, metrics_cell

PARAMS = {"lr": 0.001, "iterations": 2000, "batch_size": 40000, "momentum": 0.9}
ITEMS = {"lr=0.001", "iterations=2000", "batch_size=40000", "momentum=0.9"}


def drawn(renderable, width: int) -> str:
    """The text a renderable leaves in `width` cells, as a DataTable draws a cell (one line, no wrap)."""
    console = Console(width=max(width, 1), color_system=None, legacy_windows=False)
    lines = console.render_lines(renderable, console.options.update(width=width, height=1, no_wrap=True), pad=False)
    return "".join(segment.text for segment in lines[0]).rstrip()


def assert_whole(text: str, items: set[str]) -> None:
    """Every `key=value` shown is one of the items, whole; anything left out is said with `…`."""
    tokens = text.split()
    assert all(token in items or token == "…" for token in tokens), text
    shown = [t for t in tokens if t != "…"]
    if len(shown) < len(items):
        assert tokens and tokens[-1] == "…", text


# pure formatting ----------------------------------------------------------------------------------
@pytest.mark.parametrize("width", range(1, 60))
def test_a_params_cell_never_cuts_an_item(width):
    text = drawn(cell(pairs(PARAMS)), width)
    assert len(text) <= width
    assert_whole(text, ITEMS)
    assert "iterations=20 " not in text + " " and "batch_size=40 " not in text + " "


@pytest.mark.parametrize("width", range(3, 30))
def test_a_metrics_cell_never_cuts_a_number(width):
    run = SimpleNamespace(status=None, summary={"test_acc": 0.9556, "loss": 0.125}, verdict="pass")
    text = drawn(metrics_cell(run), width)
    assert len(text) <= width
    body = text[2:] if text.startswith("✓ ") else text
    assert_whole(body, {"test_acc=0.9556", "loss=0.125"})
    assert not re.search(r"test_acc=0(?![.\d])", text)


def test_the_cell_keeps_its_full_text_for_comparison_and_filters():
    value = cell(pairs(PARAMS))
    assert str(value) == "lr=0.001 iterations=2000 batch_size=40000 momentum=0.9"
    assert value == cell(pairs(PARAMS)) and value != cell(pairs({"lr": 0.002}))
    assert drawn(value, 80) == str(value)
    assert str(cell(pairs(PARAMS, limit=2))) == "lr=0.001 iterations=2000 …"  # a limit says it left items out


def test_fit_items_and_elide():
    items = ["lr=0.001", "iterations=2000"]
    assert fit_items(items, 24) == "lr=0.001 iterations=2000"
    assert fit_items(items, 23) == "lr=0.001 …"
    assert fit_items(items, 9) == "…"
    assert fit_items(["iterations=2000"], 14) == "…"
    assert fit_items(items, 0) == ""
    assert elide("mnist-numpy/train", 12) == "mnist-numpy…"
    assert elide("mnist-numpy/train", 17) == "mnist-numpy/train"
    assert drawn(cell("a-rather-long-project-name/sweep"), 12) == "a-rather-lo…"


def test_share_width_gives_the_spare_room_to_the_weighted_columns():
    layout = [("id", 8, 0), ("name", 18, 1), ("metrics", 16, 2), ("finished", 8, 0)]
    assert share_width(50, layout) == {"id": 8, "name": 18, "metrics": 16, "finished": 8}
    assert share_width(80, layout) == {"id": 8, "name": 28, "metrics": 36, "finished": 8}
    assert share_width(40, layout) == {"id": 8, "name": 18, "metrics": 16, "finished": 8}  # least kept


# on screen ----------------------------------------------------------------------------------------
def add_wide_run(wb) -> None:
    wb._services.store.insert_run({"id": "wide0001", "project": "a-rather-long-project-name", "project_path": "/p",
                         "experiment": "sweep", "status": "succeeded", "machine": "local",
                         "executor": "process", "created_at": NOW - 10, "started_at": NOW - 9,
                         "finished_at": NOW - 5, "params": PARAMS,
                         "summary": {"test_acc": 0.9556, "loss": 0.125, "val_loss": 0.25}})


async def settle(app, pilot):
    for _ in range(2):
        await app.workers.wait_for_complete()
        await pilot.pause()


def lines(table: DataTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


def column_text(table: DataTable, line: str, key: str) -> str:
    start = 0
    for column in table.ordered_columns:
        width = column.get_render_width(table)
        if column.key.value == key:
            return line[start:start + width].strip()
        start += width
    raise KeyError(key)


def used_width(table: DataTable) -> int:
    return sum(column.get_render_width(table) for column in table.columns.values())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_dashboard_columns_fit_the_width_they_have(seeded, size):
    add_wide_run(seeded)
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        for table in app.screen.query(DataTable):  # all of it used, nothing past the edge
            assert used_width(table) == table.scrollable_content_region.width, table.id
        recent = app.screen.query_one("#recent", DataTable)
        shown = lines(recent)
        assert shown[0].split()[-1] == "finished"  # the last column, whole
        assert any(line.rstrip().endswith("59m ago") for line in shown)
        summaries = {run["id"]: set(pairs(run["summary"]).items) for run in seeded._services.store.list_runs(limit=None)}
        for line in shown[1:]:
            if line.split():
                assert_whole(column_text(recent, line, "metrics"), summaries[line.split()[0]])
        wide = next(line for line in shown if line.lstrip().startswith("wide0001"))
        project = column_text(recent, wide, "project/experiment")
        assert project.endswith("…") or project == "a-rather-long-project-name/sweep"
        metrics = recent.columns[next(k for k in recent.columns if k.value == "metrics")].width
        if size == (80, 24):
            assert project.endswith("…") and metrics >= 16
        else:  # the extra width goes to the names and most to the metrics
            assert project == "a-rather-long-project-name/sweep" and metrics >= 40
            assert "test_acc=0.9556 loss=0.125 val_loss=0.25" in column_text(recent, wide, "metrics")


async def test_dashboard_refits_when_the_terminal_is_resized(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        recent = app.screen.query_one("#recent", DataTable)
        narrow = used_width(recent)
        await pilot.resize_terminal(120, 40)
        await settle(app, pilot)
        assert used_width(recent) == recent.scrollable_content_region.width > narrow
        await pilot.resize_terminal(80, 24)
        await settle(app, pilot)
        assert used_width(recent) == narrow
        assert lines(recent)[0].split()[-1] == "finished"


async def test_runs_table_shows_params_whole_or_not_at_all(seeded):
    add_wide_run(seeded)
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        wide = next(line for line in lines(table) if line.lstrip().startswith("wide0001"))
        params = column_text(table, wide, "params")
        assert_whole(params, ITEMS)
        assert params.endswith("…") and "iterations=20" not in params.replace("iterations=2000", "")
        assert str(table.get_cell("wide0001", "params")) == "lr=0.001 iterations=2000 batch_size=40000 momentum=0.9"


@pytest.mark.parametrize("key, hint, needle", [
    ("6", "#deployments-hint", "on the Models screen (5), pick a version and press D"),
    ("5", "#models-hint", "`workbench models register RUN ARTIFACT --name NAME`")])
async def test_empty_registry_screens_say_how_to_start(seeded, key, hint, needle):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.press(key)
        await until(app, pilot, lambda: app.screen.loads)
        text = str(app.screen.query_one(hint, Static).render())
        assert needle in text


def test_a_run_that_did_not_succeed_never_shows_a_pass_mark():
    """Older histories recorded verdicts for cancelled runs: the table never shows their ✓."""
    from workbench.tui.cells import metrics_cell

    summary = {"acc": 0.99}
    assert metrics_cell(SimpleNamespace(status="succeeded", verdict="pass", summary=summary)).plain.startswith("✓")
    for status in ("cancelled", "failed", "lost", "running"):
        assert "✓" not in metrics_cell(SimpleNamespace(status=status, verdict="pass", summary=summary)).plain
