"""The Projects screen and its add dialog (issue 22 item 19): "runs on" says where an experiment's runs go
and in what; the add dialog completes a folder with Tab, as a shell does."""

from __future__ import annotations

from textual.widgets import DataTable, Input

from fixture_db import NOW
from test_models_screen import shown_lines
from test_run_screens import settle, until
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.add_project import AddProjectScreen

SPEC = '''[project]
name = "places"
[experiments.built]
dockerfile = "Dockerfile"
command = ["python", "train.py"]
[experiments.placed]
image = "python:3.11-slim"
command = ["python", "train.py"]
machines = ["local", "gpu-a"]
gpus = 1
[experiments.pinned]
image = "python:3.11-slim"
command = ["python", "train.py"]
machine = "gpu-a"
'''


async def projects_table(app, pilot, rows: int) -> DataTable:
    await pilot.press("3")
    await until(app, pilot, lambda: app.screen.query_one("#projects-table", DataTable).row_count == rows)
    return app.screen.query_one("#projects-table", DataTable)


async def test_runs_on_says_the_machine_and_the_image(wb, make_project):
    wb.add_project(str(make_project(SPEC, {"Dockerfile": "FROM python:3.11-slim\n"})))
    wb.add_machine("gpu-a", ssh="root@127.0.0.1:1")
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await projects_table(app, pilot, 3)
        shown = {key.value.split("\x1f")[1]: str(table.get_cell(key, "runs on")) for key in table.rows}
        assert shown == {"built": "local · Dockerfile",
                         "placed": "auto: local or gpu-a · python:3.11-slim · 1 GPU",
                         "pinned": "gpu-a · python:3.11-slim"}


def folders(root) -> None:
    for rel in ("experiments/mnist", "experiments/cifar", "exports", "data"):
        (root / rel).mkdir(parents=True)
    (root / "experiment-notes.txt").write_text("")
    (root / ".hidden").mkdir()


async def open_add_dialog(app, pilot) -> Input:
    await projects_table(app, pilot, 0)
    await pilot.press("a")
    await until(app, pilot, lambda: isinstance(app.screen, AddProjectScreen))
    return app.screen.query_one("#path", Input)


async def tab(app, pilot) -> None:
    await pilot.press("tab")
    await settle(app, pilot)


async def test_tab_completes_the_folder_like_a_shell(wb, tmp_path):
    folders(tmp_path)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        field = await open_add_dialog(app, pilot)
        await pilot.press(*f"{tmp_path}/ex")
        await tab(app, pilot)  # experiments/, experiment-notes.txt, exports: their common prefix
        assert field.value == f"{tmp_path}/exp" and app.focused is field
        hint = str(app.screen.query_one("#add-hint").render())
        assert "experiment-notes.txt" in hint and "experiments/" in hint and "exports/" in hint
        await pilot.press("e", "r", "i", "m", "e", "n", "t", "s")
        await tab(app, pilot)  # one folder: whole, with its slash
        assert field.value == f"{tmp_path}/experiments/" and field.cursor_position == len(field.value)
        await pilot.press("m")
        await tab(app, pilot)
        assert field.value == f"{tmp_path}/experiments/mnist/"
        await tab(app, pilot)  # nothing below it: unchanged
        assert field.value == f"{tmp_path}/experiments/mnist/"
        await pilot.press("enter")
        await settle(app, pilot)
        assert not isinstance(app.screen, AddProjectScreen)


async def test_tab_completes_under_the_home_folder_as_typed(wb, tmp_path, monkeypatch):
    folders(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        field = await open_add_dialog(app, pilot)
        await pilot.press("~")
        await tab(app, pilot)
        assert field.value == "~/"
        await pilot.press("d")
        await tab(app, pilot)
        assert field.value == "~/data/"  # the ~ kept as typed
        field.value = "~/."
        await tab(app, pilot)  # a dot asks for hidden folders
        assert field.value == "~/.hidden/"
        field.value = "~/"
        await tab(app, pilot)  # hidden ones are not offered otherwise
        hint = str(app.screen.query_one("#add-hint").render())
        assert ".hidden" not in hint and "data/" in hint


WIDE = '''[project]
name = "mnist-numpy"
[experiments.train]
image = "python:3.11-slim"
command = ["python", "train.py"]
params = { lr = 0.1, epochs = 15, hidden = 64 }
[watch]
run = "train"
'''


async def test_the_table_fits_80_columns_and_the_detail_says_the_rest(wb, make_project):
    """Issue 22 item 5 on the Projects screen: at 80×24 the table does not scroll sideways (it was 194 cells
    wide: params cut, the folder and a spec's problem out of sight); params show whole items, the folder its
    end; below the table the highlighted row's folder, params and problem are shown whole."""
    mnist = make_project(WIDE, name="mnist-numpy")
    broken = make_project(SPEC.replace("places", "broken"), {"Dockerfile": "FROM python:3.11-slim\n"}, name="broken")
    wb.add_project(str(mnist))
    wb.add_project(str(broken))
    (broken / "workbench.toml").write_text('[project]\nname = "broken"\n[experiments.x]\ncommand = ["true"]\n')
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await projects_table(app, pilot, 2)
        await settle(app, pilot)
        assert table.virtual_size.width <= table.scrollable_content_region.width, table.virtual_size
        rows = shown_lines(app, table)
        trained = next(line for line in rows if "mnist-numpy " in line)
        assert "lr=0.1 epochs=15" in trained, rows
        folder = trained.split()[-1]  # the folder's end: its last names
        assert folder.startswith("…") and str(mnist).endswith(folder[1:]) and len(folder) > 8, rows
        detail = app.screen.query_one("#projects-detail")
        problem = "set exactly one of `image` or `dockerfile`"
        assert [k.value.split("\x1f")[0] for k in table.rows] == ["broken", "mnist-numpy"]
        said = " ".join(" ".join(shown_lines(app, detail)).split())
        assert str(broken) in said and problem in said, said  # the broken row is highlighted first
        await pilot.press("down")
        await settle(app, pilot)
        said = " ".join(" ".join(shown_lines(app, detail)).split())
        assert str(mnist) in said and "lr=0.1 epochs=15 hidden=64" in said, said


async def test_a_watched_project_says_its_watch_state_whole_at_80_columns(wb, make_project):
    """`watching` was cut to `watc…` in the 5-cell watch column: the table says a short word, whole."""
    import re

    from workbench.tui.screens.projects import short_watch

    wb.add_project(str(make_project(WIDE, name="mnist-numpy")))
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await projects_table(app, pilot, 1)
        table.focus()
        await pilot.press("w")
        await until(app, pilot, lambda: "mnist-numpy" in app.watches)
        try:
            def row() -> str:
                return next(line for line in shown_lines(app, table) if "mnist-numpy " in line)

            await until(app, pilot, lambda: f" {short_watch(app.watches['mnist-numpy'].state)} " in row(), timeout=10)
            cells = re.split(r"\s{2,}", row().strip())  # project, experiment, watch, …
            assert cells[2] == short_watch(app.watches["mnist-numpy"].state) and "…" not in cells[2], row()
            assert [short_watch(s) for s in ("watching", "change seen", "run started", "last: pass")] == \
                ["on", "change", "run", "pass"]
        finally:
            await pilot.press("w")
            await until(app, pilot, lambda: "mnist-numpy" not in app.watches)
