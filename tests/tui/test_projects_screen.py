"""The Projects screen and its add dialog (issue 22 item 19): "runs on" says where an experiment's runs go
and in what; the add dialog completes a folder with Tab, as a shell does."""

from __future__ import annotations

from textual.widgets import DataTable, Input

from fixture_db import NOW
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
