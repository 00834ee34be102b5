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
