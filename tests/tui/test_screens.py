"""Every screen driven by Pilot over a real database: navigation, keys, help, palette, filters, detail."""

from __future__ import annotations

from textual.widgets import DataTable, Log, Static

from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.widgets.metric_chart import MetricChart

from fixture_db import NOW


def insert_runs(wb, count: int) -> None:
    """`count` finished runs, the newest first by id order (00000000 newest)."""
    rows = [(f"{i:08x}", "p", "e", "succeeded", "local", "docker", "/p", NOW - i, NOW - i, NOW - i + 5)
            for i in range(count)]
    with wb._services.store.tx() as conn:
        conn.executemany("INSERT INTO runs (id, project, experiment, status, machine, executor, project_path, "
                         "created_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


async def settle(app, pilot):
    await app.workers.wait_for_complete()
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_number_keys_reach_every_screen(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        seen = []
        for key, mode in zip("123456", ("dashboard", "machines", "projects", "runs", "models", "deployments")):
            await pilot.press(key)
            await settle(app, pilot)
            assert app.current_mode == mode
            seen.append(type(app.screen).__name__)
        await pilot.press("right_square_bracket")
        assert app.current_mode == "dashboard"
        await pilot.press("left_square_bracket")
        assert app.current_mode == "deployments"
        assert len(set(seen)) == 6


async def test_runs_screen_lists_filters_sorts_and_opens(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert [k.value for k in table.rows] == [f"r{i:07d}" for i in range(5, -1, -1)]
        assert "failed" in str(table.get_cell("r0000001", "status"))
        await pilot.press("f")  # status: running -> none of ours
        await settle(app, pilot)
        assert table.row_count == 0
        for _ in range(2):  # queued, succeeded
            await pilot.press("f")
        await settle(app, pilot)
        assert {str(table.get_cell(k, "status")) for k in table.rows} == {"succeeded"}
        assert table.get_cell("r0000000", "status").style == "green"
        for _ in range(4):  # failed, cancelled, lost, all
            await pilot.press("f")
        await settle(app, pilot)
        assert table.row_count == 6
        await pilot.press("slash", *"hello")
        await settle(app, pilot)
        assert all("hello" in str(table.get_cell(k, "project/experiment")) for k in table.rows)
        assert table.row_count == 3
        await pilot.press("escape")
        await settle(app, pilot)
        assert table.row_count == 6
        await pilot.press("S")  # oldest first
        await settle(app, pilot)
        assert [k.value for k in table.rows][0] == "r0000000"
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == "r0000000"
        await pilot.press("m")
        await settle(app, pilot)
        charts = list(app.screen.query(MetricChart))
        assert {c.metric for c in charts} == {"loss", "acc"}
        assert all(c.data["points"] == 40 for c in charts)
        await pilot.press("escape")
        assert app.screen.__class__.__name__ == "RunsScreen"


async def test_help_is_generated_from_bindings(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        ids = {row[3] for row in app.screen.rows}
        assert {"runs.open", "runs.filter", "runs.cancel", "app.quit", "app.help"} <= ids
        groups = [row[0] for row in app.screen.rows]
        # the screen's own actions first, then the app's, then generic cursor/page/copy keys (issue 9)
        assert groups == sorted(groups, key=["This screen", "Everywhere", "Lists, fields and the terminal"].index)
        assert app.screen.rows[0][3].startswith("runs.") and groups[-1] == "Lists, fields and the terminal"
        assert "Cursor up" in [row[2] for row in app.screen.rows if row[0] == groups[-1]]
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_keymap_from_config_remaps_a_binding(seeded):
    from workbench.config import Config

    config = Config(keymap={"nav.runs": "r,4", "app.quit": "ctrl+q"}, path=seeded.dirs.config_file)
    app = WorkbenchApp(seeded, clock=lambda: NOW, config=config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        assert app.current_mode == "runs"
        await pilot.press("q")  # no longer quits
        await pilot.pause()
        assert app.is_running


async def test_palette_offers_the_screen_actions(seeded):
    from workbench.tui.commands import ScreenCommands

    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        names = [name for name, _, _ in app.screen.palette_commands()]
        assert {"Cancel run", "Rerun", "Follow logs", "Filter runs"} <= set(names)
        provider = ScreenCommands(app.screen)
        hits = [hit async for hit in provider.search("cancel")]
        assert hits and "Cancel" in str(hits[0].text)
        await pilot.press("colon")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"


async def test_runs_screen_pages_through_a_big_history(wb):
    insert_runs(wb, 1000)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.row_count == 100  # a page, never the whole history
        await pilot.press("G")
        await settle(app, pilot)
        assert [k.value for k in table.rows][-1] == f"{999:08x}"  # the oldest run is reachable
        status = str(app.screen.query_one("#runs-status", Static).render())
        assert "901–1000 of 1,000" in status
        await pilot.press("g", "ctrl+f")
        await settle(app, pilot)
        assert [k.value for k in table.rows][0] == f"{100:08x}"


async def test_bad_theme_files_are_reported_and_choice_persists(seeded, tmp_path):
    themes = tmp_path / "themes"
    themes.mkdir()
    (themes / "broken.toml").write_text("name = \n")
    (themes / "nocolor.toml").write_text('name = "x"\nprimary = "not-a-colour"\n')
    (themes / "mine.toml").write_text('name = "mine"\nprimary = "#ff00ff"\n')
    (themes / "badvar.toml").write_text('name = "v"\nprimary = "#ff00ff"\n[variables]\nfooter-key-foreground = "nope"\n')
    app = WorkbenchApp(seeded, clock=lambda: NOW, user_themes=themes)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert {"workbench-dark", "workbench-light", "high-contrast", "ansi-16", "mine"} <= set(app.available_themes)
        assert app.theme == "workbench-dark"
        notes = [n for n in app._notifications]
        assert any("3 theme file(s) skipped" in (n.title or "") and "broken.toml" in n.message
                   and "nocolor.toml" in n.message and "variables.footer-key-foreground" in n.message for n in notes)
        app.theme = "high-contrast"
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert 'theme = "high-contrast"' in seeded.dirs.config_file.read_text()
    again = WorkbenchApp(seeded, clock=lambda: NOW)
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert again.theme == "high-contrast"


async def test_projects_screen_shows_spec_errors_inline(wb, make_project):
    good = make_project('[project]\nname = "good"\n[experiments.t]\nimage = "busybox:latest"\ncommand = ["echo"]\n'
                        'params = { lr = 0.1 }\n')
    bad = make_project('[project]\nname = "bad"\n[experiments.t]\nimage = "busybox:latest"\ncommand = ["echo"]\n')
    wb.add_project(str(good))
    wb.add_project(str(bad))
    (bad / "workbench.toml").write_text("[project\n")
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("3")
        await settle(app, pilot)
        table = app.screen.query_one("#projects-table", DataTable)
        cells = [str(table.get_row_at(i)) for i in range(table.row_count)]
        assert any("TOML syntax error" in c for c in cells)
        assert any("good" in c and "lr=0.1" in c for c in cells)


async def test_dashboard_summarises_runs_and_machine(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        recent = app.screen.query_one("#recent", DataTable)
        assert recent.row_count == 6
        machine = str(app.screen.query_one("#machine", Static).render())
        assert "local" in machine and "CPUs" in machine
        assert "no GPUs" in machine or "GPU0" in machine


async def test_brackets_in_user_text_are_never_markup(wb):
    """Param values, names and errors with [brackets] show literally and never break rendering."""
    wb._services.store.insert_run({"id": "brkt0001", "project": "[bold]p", "project_path": "/p", "experiment": "e[1]",
                         "status": "failed", "status_reason": "exit [code] 1", "machine": "local",
                         "executor": "process", "created_at": NOW, "params": {"layers": "[64, 32]"}})
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert str(table.get_cell("brkt0001", "params")) == "layers=[64, 32]"
        assert str(table.get_cell("brkt0001", "project/experiment")) == "[bold]p/e[1]"
        await pilot.press("enter")
        await settle(app, pilot)
        assert "exit [code] 1" in str(app.screen.query_one("#detail-title", Static).render())


async def test_arrow_keys_turn_pages_and_a_removed_run_closes_its_detail(wb):
    insert_runs(wb, 150)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await settle(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=99)
        await pilot.press("down")  # past the page's last row: the next page, first row
        await settle(app, pilot)
        assert [k.value for k in table.rows][0] == f"{100:08x}" and table.cursor_row == 0
        await pilot.press("up")
        await settle(app, pilot)
        assert table.cursor_row == 99 and [k.value for k in table.rows][-1] == f"{99:08x}"
        await pilot.press("end")
        await settle(app, pilot)
        assert [k.value for k in table.rows][-1] == f"{149:08x}"
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        wb._services.store.delete_run(app.screen.run_id)
        app.screen.reload()
        await settle(app, pilot)
        assert not isinstance(app.screen, RunDetailScreen)
        assert any("no longer exists" in n.message for n in app._notifications)


async def test_an_unreadable_config_is_never_overwritten(seeded):
    path = seeded.dirs.config_file
    path.write_text('theme = "x"\n[keymap]\n"app.quit" = 5\n')  # wrong type: reported, not used
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert any("config.toml ignored" in (n.title or "") for n in app._notifications)
        app.theme = "workbench-light"
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert path.read_text() == 'theme = "x"\n[keymap]\n"app.quit" = 5\n'


async def test_watching_is_toggled_per_project(wb, make_project):
    root = make_project('[project]\nname = "w"\n[experiments.t]\nimage = "busybox:latest"\ncommand = ["true"]\n'
                        '[watch]\nrun = "t"\npaths = ["*.py"]\n')
    wb.add_project(str(root))
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.press("3")
        await settle(app, pilot)
        table = app.screen.query_one("#projects-table", DataTable)
        table.focus()
        assert str(table.get_cell(f"w\x1ft", "watch")) == "off"
        await pilot.press("w")
        await settle(app, pilot)
        assert "w" in app.watches and app.watches["w"].state == "watching"
        app.screen.reload()
        await settle(app, pilot)
        assert str(table.get_cell(f"w\x1ft", "watch")) == "on"  # short_watch: the table says a whole short word
        await pilot.press("w")
        await settle(app, pilot)
        assert app.watches == {}


async def test_escape_cancels_every_dialog(seeded):
    from workbench.tui.screens.add_project import AddProjectScreen
    from workbench.tui.screens.confirm import ConfirmScreen

    app = WorkbenchApp(seeded, clock=lambda: NOW)
    answers = []
    async with app.run_test(size=(80, 24)) as pilot:
        for dialog in (AddProjectScreen(), ConfirmScreen("Sure?")):
            app.push_screen(dialog, answers.append)
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is not dialog
    assert answers == [None, False]


async def test_the_dashboard_shows_the_queue_and_what_each_run_waits_for(wb):
    wb._services.store.acquire_lease("dispatcher", "this-test", 3600)  # as if one were at work: none is started
    wb._services.store.insert_run({"id": "queued01", "project": "p", "project_path": "/p", "experiment": "e",
                         "status": "queued", "status_reason": "waiting for 2 free GPUs on gpu-a, gpu-b",
                         "machine": "auto", "executor": "docker", "created_at": NOW - 30,
                         "waiting": {"machines": "auto", "gpus": 2, "executor": None}})
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert "queue: 1 waiting" in str(app.screen.query_one("#live-title", Static).render())
        live = app.screen.query_one("#live", DataTable)
        assert str(live.get_cell("queued01", "latest")).startswith("queued: waiting for 2 free GPUs")
    assert wb._services.store.get_run("queued01")["waiting"] is not None  # the app's reconcile left it to the dispatcher
