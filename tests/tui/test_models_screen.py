"""The Models screen at 80×24 (issue 22 item 16): its empty state says how to start, whole."""

from __future__ import annotations

from textual.widgets import Static

from fixture_db import NOW
from test_run_screens import until
from workbench.tui.app import WorkbenchApp


def shown_lines(app, widget) -> list[str]:
    """The text the terminal shows in the widget's region."""
    strips = app.screen._compositor.render_strips()
    region = widget.region
    return [strips[y].text[region.x:region.right] for y in range(region.y, region.bottom)]


async def test_the_empty_state_is_shown_whole_at_80_columns(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await until(app, pilot, lambda: app.screen.loads)
        await pilot.pause()
        hint = app.screen.query_one("#models-hint", Static)
        said = " ".join(" ".join(shown_lines(app, hint)).split())
        assert said == ("no models yet: open a run (4, enter) and press M to register one of its artifacts, or "
                        "`workbench models register RUN ARTIFACT --name NAME`")


async def test_the_alias_history_reads_newest_first(wb):
    """Issue 22 item 17: the alias history is newest first, as `models show` and every deployment history;
    the four newest moves are shown."""
    wb._services.store.insert_run({"id": "alias001", "project": "p", "project_path": "/p", "experiment": "e",
                         "status": "succeeded", "machine": "local", "executor": "process", "created_at": NOW,
                         "started_at": NOW, "finished_at": NOW + 5, "params": {}})
    lineage = {"project": "p", "experiment": "e", "status": "succeeded", "params": {}, "metrics": {}}
    for n in range(1, 6):
        wb._services.store.add_model_version("m", sha256=f"{n:064x}", size=10, filename="model.txt", run_id="alias001",
                                   artifact="model.txt", lineage=lineage, forced=False)
        wb._services.store.set_model_alias("m", "production", n, "me")
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        await until(app, pilot, lambda: app.screen.loads and app.screen.versions)
        detail = str(app.screen.query_one("#models-lineage", Static).render())
        moves = [line.split("@production ")[1] for line in detail.splitlines() if "@production " in line]
        assert moves == ["4 → 5 by me", "3 → 4 by me", "2 → 3 by me", "1 → 2 by me"], detail
