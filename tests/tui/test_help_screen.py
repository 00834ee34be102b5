"""The help overlay (issue 22 item 15): it scrolls with j, k, the arrows and pgup/pgdn at 80×24, and its
title names the screen in words."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from fixture_db import NOW
from test_run_screens import open_runs, settle, until
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.run_detail import RunDetailScreen


async def open_help_on_run_detail(app, pilot) -> HelpScreen:
    await open_runs(app, pilot)
    await pilot.press("enter")
    await until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen))
    await pilot.press("question_mark")
    await until(app, pilot, lambda: isinstance(app.screen, HelpScreen))
    return app.screen


async def test_help_scrolls_with_j_k_arrows_and_pages(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        help_screen = await open_help_on_run_detail(app, pilot)
        table = help_screen.query_one(DataTable)
        assert table.max_scroll_y > 0  # more keys than rows: there is something to scroll to
        moves = []
        for key in ("j", "j", "k", "down", "up", "pagedown", "pageup"):
            before = table.scroll_y
            await pilot.press(key)
            await settle(app, pilot)
            moves.append(table.scroll_y - before)
        assert moves[:5] == [1, 1, -1, 1, -1]  # each key moves what is shown, not a cursor inside it
        assert moves[5] > 1 and moves[6] < -1
        await pilot.press(*["j"] * table.max_scroll_y)
        await settle(app, pilot)
        assert table.scroll_y == table.max_scroll_y  # the last key reachable
        hint = help_screen.query_one(".hint", Static)  # the whole overlay fits: the remap hint is shown
        assert hint.region.height == 1 and hint.region.bottom <= app.screen.region.bottom
        assert help_screen.query_one(".dialog").max_scroll_y == 0


async def test_help_title_names_the_screen_in_words(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        help_screen = await open_help_on_run_detail(app, pilot)
        title = str(help_screen.query_one("#help-title", Static).render())
        assert title == "Keys: Run detail"
        await pilot.press("escape")
        await pilot.press("escape")
        await settle(app, pilot)
        await pilot.press("question_mark")
        await until(app, pilot, lambda: isinstance(app.screen, HelpScreen))
        assert str(app.screen.query_one("#help-title", Static).render()) == "Keys: Runs"


async def test_the_remap_hint_names_the_keymap_table(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_runs(app, pilot)
        await pilot.press("question_mark")
        await until(app, pilot, lambda: isinstance(app.screen, HelpScreen))
        hint = str(app.screen.query_one(".hint", Static).render())
        assert hint == 'Remap any binding in config.toml: [keymap] "binding id" = "keys"'  # was read as markup
