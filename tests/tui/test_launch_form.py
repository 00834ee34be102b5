"""The launch form (issue 22 item 13): a value the experiment cannot take keeps the form open with what was
typed and says why in the app's words; the machine list offers auto (placement, as `--machine auto`); the
focus starts where the user types."""

from __future__ import annotations

from textual.widgets import Input, Select, Static

from fixture_db import NOW
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.launch_form import LaunchForm

SIZE = (80, 24)


async def open_form(app, pilot, form: LaunchForm) -> list:
    result: list = []
    app.push_screen(form, result.append)
    await pilot.pause()
    return result


def error_text(form: LaunchForm) -> str:
    error = form.query_one("#launch-error", Static)
    return str(error.render()) if error.display else ""


async def test_a_value_of_the_wrong_type_keeps_the_form_open_and_says_why(wb):
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        form = LaunchForm("p", "train", {"lr": 0.01, "hidden": 128, "augment": False})
        result = await open_form(app, pilot, form)
        assert error_text(form) == ""
        form.query_one("#param-lr", Input).value = "0.3"
        form.query_one("#param-hidden", Input).value = "wide"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form and result == []  # still open, nothing launched
        assert form.query_one("#param-lr", Input).value == "0.3"  # what was typed is kept
        assert form.query_one("#param-hidden", Input).value == "wide"
        said = error_text(form)
        assert said.startswith("hidden: expected an integer") and "128" in said
        assert "-p" not in said and "'wide'" not in said  # no CLI wording
        assert app.focused is form.query_one("#param-hidden", Input)  # where the fix is typed
        await pilot.press("ctrl+u", *"256")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert result == [{"overrides": ["lr=0.3", "hidden=256"], "executor": None, "machine": "local"}]


async def test_every_field_that_cannot_be_taken_is_named(wb):
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        form = LaunchForm("p", "train", {"lr": 0.1, "epochs": 15, "hidden": 128, "augment": False})
        result = await open_form(app, pilot, form)
        form.query_one("#param-hidden", Input).value = "1.5"
        form.query_one("#param-augment", Input).value = "maybe"
        await pilot.press("ctrl+s")
        await pilot.pause()
        lines = error_text(form).splitlines()
        assert lines == ["hidden: expected an integer, like the default 128",
                         "augment: expected true or false"]
        assert app.screen is form and result == []
        on_screen = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        assert all(line in on_screen for line in lines)  # in sight at 80×24, below four fields
        assert [name for name in form.params if form.query_one(f"#param-{name}").has_class("-invalid")] == [
            "hidden", "augment"]


async def test_the_machine_list_offers_auto_placement(wb):
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        form = LaunchForm("p", "train", {"lr": 0.01}, ["local", "gpu-a"])
        result = await open_form(app, pilot, form)
        machine = form.query_one("#machine", Select)
        assert [value for _, value in machine._options if value != Select.BLANK] == ["local", "auto", "gpu-a"]
        machine.focus()
        await pilot.press("enter", "down", "enter")  # open the list, the next one (auto), choose it
        await pilot.pause()
        assert machine.value == "auto"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert result == [{"overrides": [], "executor": None, "machine": "auto"}]


async def test_without_params_the_focus_starts_on_the_machine_not_the_executor(wb):
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        form = LaunchForm("p", "train", {}, ["local", "gpu-a"])
        await open_form(app, pilot, form)
        assert app.focused is form.query_one("#machine", Select)


async def form_from_projects(app, pilot) -> LaunchForm:
    """The launch form of the one project listed, opened with l on the Projects screen."""
    from textual.widgets import DataTable

    from test_run_screens import until

    await pilot.press("3")
    await until(app, pilot, lambda: app.screen.query_one("#projects-table", DataTable).row_count == 1)
    app.screen.query_one("#projects-table", DataTable).focus()
    await pilot.press("l")
    await until(app, pilot, lambda: isinstance(app.screen, LaunchForm))
    return app.screen


async def test_a_param_gone_from_the_spec_since_the_form_opened_is_named_and_the_form_stays(wb, make_project):
    from test_run_screens import until

    spec = ('[project]\nname = "demo"\n[experiments.train]\nimage = "busybox:latest"\ncommand = ["echo"]\n'
            'params = { lr = 0.1, hidden = 64 }\n')
    root = make_project(spec)
    wb.add_project(str(root))
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        form = await form_from_projects(app, pilot)
        (root / "workbench.toml").write_text(spec.replace(", hidden = 64", ""))  # edited meanwhile
        form.query_one("#param-lr", Input).value = "0.3"
        form.query_one("#param-hidden", Input).value = "256"
        await pilot.press("ctrl+s")
        await until(app, pilot, lambda: bool(error_text(form)))
        assert app.screen is form
        assert error_text(form) == ("hidden: not a parameter of this experiment any more (its workbench.toml "
                                    "changed since this form opened)")
        assert form.query_one("#param-lr", Input).value == "0.3"
        assert app.focused is form.query_one("#param-hidden", Input)
        assert wb._services.store.count_runs() == 0  # nothing launched


async def test_a_default_changed_since_the_form_opened_runs_as_the_form_showed_it(wb, make_project):
    """The form showed lr 0.1 (the default then); the spec's default is 0.5 by the time it is sent: the run
    takes the 0.1 the user saw, and a param gone from the spec whose field was left alone is no problem."""
    from test_run_screens import until

    spec = ('[project]\nname = "demo"\n[experiments.train]\nimage = "busybox:latest"\ncommand = ["echo"]\n'
            'params = { lr = 0.1, hidden = 64, seed = 1 }\n')
    root = make_project(spec)
    wb.add_project(str(root))
    launched: list = []
    wb.launch = lambda path, experiment=None, overrides=None, **_: launched.append(overrides)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        form = await form_from_projects(app, pilot)
        (root / "workbench.toml").write_text(spec.replace("lr = 0.1, hidden = 64, seed = 1", "lr = 0.5, seed = 1"))
        form.query_one("#param-seed", Input).value = "7"
        await pilot.press("ctrl+s")
        await until(app, pilot, lambda: launched)
        assert launched == [["lr=0.1", "seed=7"]]
