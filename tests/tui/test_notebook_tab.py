"""Issue 24: the run detail's Notebook tab, driven by Pilot over a real database with executed notebooks
written where a run keeps them: only a notebook run has the tab; it shows the notebook (code with its
prompt, outputs, the image's placeholder, the error), scrolls by keyboard, says why there is no notebook
yet, and shows it once the run ends; the SVG snapshot at 80×24."""

from __future__ import annotations

import json

from textual.widgets import TabbedContent

from fixture_db import NOW
from notebook_fixture import add_notebook_run, executed_notebook
from test_run_screens import add_run, settle, until
from test_snapshots import _settle, frozen_app  # noqa: F401 - the snapshot's fixture
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.widgets.notebook_view import NotebookView


def drawn(view: NotebookView) -> str:
    """Every line of the tab's content, scrolled into view or not."""
    return "\n".join(line.text for line in view.lines)


def shown_lines(app, widget) -> list[str]:
    """The text the terminal shows in the widget's region."""
    strips = app.screen._compositor.render_strips()
    region = widget.region
    return [strips[y].text[region.x:region.right] for y in range(region.y, region.bottom)]


async def open_detail(app, pilot, run_id: str) -> RunDetailScreen:
    app.push_screen(RunDetailScreen(run_id))
    await until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run is not None)
    return app.screen


async def open_notebook_tab(app, pilot, run_id: str) -> tuple[RunDetailScreen, NotebookView]:
    detail = await open_detail(app, pilot, run_id)
    await pilot.press("n")
    return detail, detail.query_one(NotebookView)


async def test_a_notebook_run_shows_its_executed_notebook_scrolled_by_keys(wb):
    add_notebook_run(wb, "nbrun001", created=NOW, notebook=executed_notebook())
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, "nbrun001")
        await until(app, pilot, lambda: detail._notebook_signature is not None)
        await pilot.press("n")
        await settle(app, pilot)
        assert detail.query_one(TabbedContent).active == "notebook"
        scroll = detail.query_one("#notebook-view")
        assert app.focused is scroll
        text = drawn(detail.query_one(NotebookView))
        for expected in ("Training MNIST", "In [3]:", "epoch 1 loss 0.50", "warning: slow disk", "Out[3]:",
                         "[image/png 64x48, 162 B — open", "#cell-4]", "row 199", "… 50 more lines",
                         "ValueError: lr too high", "Traceback (most recent call last)"):
            assert expected in text, expected
        assert "row 200" not in text and "\x1b" not in text
        assert "Training MNIST" in "\n".join(shown_lines(app, scroll))
        await pilot.press("pagedown")
        await settle(app, pilot)
        assert scroll.scroll_y > 0
        assert "Training MNIST" not in "\n".join(shown_lines(app, scroll))
        await pilot.press("end")
        await settle(app, pilot)
        assert scroll.scroll_y == scroll.max_scroll_y > 0
        assert any("ValueError: lr too high" in line for line in shown_lines(app, scroll))
        await pilot.press("l")  # the tabs wrap around: from the last one to the first
        await settle(app, pilot)
        assert detail.query_one(TabbedContent).active == "overview"
        await pilot.press("h")
        await settle(app, pilot)
        assert detail.query_one(TabbedContent).active == "notebook"


async def test_a_command_run_has_no_notebook_tab(wb):
    add_run(wb, "cmdrun01")
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, "cmdrun01")
        await settle(app, pilot)
        assert not detail.query("#notebook")
        await pilot.press("n")
        await settle(app, pilot)
        assert detail.query_one(TabbedContent).active == "overview"
        assert any("has no notebook" in str(n.message) for n in app._notifications)
        await pilot.press("h")  # from the first tab back to the last: Metrics, no Notebook
        await settle(app, pilot)
        assert detail.query_one(TabbedContent).active == "metrics"


async def test_the_tab_says_why_there_is_no_notebook_yet_and_shows_it_when_the_run_ends(wb):
    path = add_notebook_run(wb, "nbrun002", status="running", created=NOW)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        detail, view = await open_notebook_tab(app, pilot, "nbrun002")
        await until(app, pilot, lambda: "has not finished its first cell yet" in drawn(view))
        assert view.has_class("message")
        path.parent.mkdir(parents=True)
        path.write_text('{"cells": [')  # caught mid-write: said, then replaced once the file is whole
        await until(app, pilot, lambda: "is not a valid notebook" in drawn(view))
        path.write_text(json.dumps(executed_notebook(long_output_lines=3)))
        await until(app, pilot, lambda: "In [6]:" in drawn(view))
        assert not view.has_class("message")
        wb._services.store.finish_run("nbrun002", "failed", exit_code=1, reason="notebook failed at cell 6/6")
        await until(app, pilot, lambda: detail._notebook_final)


async def test_the_notebook_is_laid_out_in_the_worker_at_the_panes_width_and_again_on_resize(wb):
    add_notebook_run(wb, "nbrun003", created=NOW, notebook=executed_notebook())
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 24)) as pilot:
        detail, view = await open_notebook_tab(app, pilot, "nbrun003")
        await until(app, pilot, lambda: "In [6]:" in drawn(view))
        wide = len(view.lines)
        assert all(line.cell_length <= view.layout_width for line in view.lines)
        await pilot.resize_terminal(50, 24)
        await until(app, pilot, lambda: len(view.lines) > wide)  # narrower: long lines wrap onto more
        assert all(line.cell_length <= view.layout_width < 50 for line in view.lines)
        assert max(line.cell_length for line in view.lines) > view.layout_width - 10  # the width used
        assert "ValueError: lr too high" in drawn(view)


async def test_a_refresh_while_a_read_is_in_flight_starts_no_other(wb):
    add_notebook_run(wb, "nbrun004", status="running", created=NOW, notebook=executed_notebook())
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        detail = await open_detail(app, pilot, "nbrun004")
        await until(app, pilot, lambda: detail._notebook_signature is not None)
        for _ in range(3):  # three refreshes in one go, as a slow read of a large notebook would see
            detail._notebook_signature = None
            detail._refresh_notebook(detail.run)
        reads = [worker for worker in app.workers if worker.group == "run-detail-notebook"]
        assert len(reads) == 1
        await until(app, pilot, lambda: detail._notebook_signature is not None)


def test_snapshot_notebook_tab(snap_compare, frozen_app, seeded):  # noqa: F811 - the fixture, imported
    add_notebook_run(seeded, "nbsnap01", created=NOW - 30, notebook=executed_notebook())

    async def go(pilot):
        await pilot.press("4")
        await _settle(pilot)
        await pilot.press("enter")  # the newest run: this one
        await _settle(pilot)
        await pilot.press("n")
        await _settle(pilot)
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=go)
