"""Issue 9, items 3, 4, 6, 8 and 11: worker failures reach the user once through one handler; workers
never own the app's state and quitting never waits on them; both palette keys; the launch form's focus;
keymap clashes said once."""

from __future__ import annotations

import threading
import time

from textual.command import CommandPalette
from textual.widgets import Input
from textual.worker import WorkerFailed

from fixture_db import NOW
from workbench.config import Config
from workbench.tui.app import WorkbenchApp, finish_stopping
from workbench.tui.screens.launch_form import LaunchForm


async def settle(app, pilot):
    for _ in range(2):
        try:
            await app.workers.wait_for_complete()
        except WorkerFailed:
            pass  # reported by the app's handler, which is what these tests look at
        await pilot.pause()


def notes(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_a_failing_loader_is_notified_once_and_the_app_goes_on(seeded):
    calls = {"n": 0}

    def broken(*_a, **_k):
        calls["n"] += 1
        raise RuntimeError("database went away")

    seeded.dashboard = broken
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(3):
            app.screen.reload()
            await settle(app, pilot)
        assert calls["n"] >= 3
        failures = [n for n in notes(app) if "database went away" in n]
        assert len(failures) == 1 and failures[0].startswith("Loading the dashboard")
        await pilot.press("4")  # the rest of the app still works
        await settle(app, pilot)
        assert app.current_mode == "runs"


async def test_fleet_and_watches_are_owned_by_the_event_loop_and_quitting_never_waits(seeded, monkeypatch):
    assigned_from: list[str] = []

    class SlowFleet:
        def start(self):
            return self

        def stop(self):
            time.sleep(3)  # a sampler joining its SSH stream

    seeded.fleet = lambda *a, **k: SlowFleet()
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    real_setattr = WorkbenchApp.__setattr__

    def watch_assignments(self, name, value):
        if name in ("fleet", "watches") and value is not None and value != {}:
            assigned_from.append(threading.current_thread().name)
        real_setattr(self, name, value)

    monkeypatch.setattr(WorkbenchApp, "__setattr__", watch_assignments)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert isinstance(app.fleet, SlowFleet)
        started = time.monotonic()
    assert time.monotonic() - started < 1.5  # the 3 s stop ran on a thread of its own
    finish_stopping()
    assert assigned_from and all(name == threading.main_thread().name for name in assigned_from), assigned_from


async def test_ctrl_p_and_colon_both_open_the_palette(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("ctrl+p", "colon"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, CommandPalette), key
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, CommandPalette)


async def test_launch_form_focuses_the_first_param_and_names_each_field(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        form = LaunchForm("p", "train", {"lr": 0.01, "epochs": 5})
        result: list = []
        app.push_screen(form, result.append)
        await pilot.pause()
        assert app.focused is form.query_one("#param-lr", Input)
        assert form.query_one("#param-epochs", Input).border_title == "epochs"
        await pilot.press("end", *["backspace"] * 8, *"0.3")  # what a user types goes to the first field
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert result == [{"overrides": ["lr=0.3"], "executor": None, "machine": "local"}]


async def test_a_keymap_that_binds_one_key_twice_is_reported_once(seeded, tmp_path):
    config = Config(path=tmp_path / "config.toml", keymap={"runs.filter": "slash,ctrl+f"})
    app = WorkbenchApp(seeded, clock=lambda: NOW, config=config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        clashes = [n for n in notes(app) if "bound twice" in n]
        assert len(clashes) == 1
        assert "ctrl+f on Runs: runs.filter, runs.next_page" in clashes[0]
    quiet = WorkbenchApp(seeded, clock=lambda: NOW, config=Config(path=tmp_path / "c2.toml",
                                                                    keymap={"runs.filter": "slash,F"}))
    async with quiet.run_test(size=(80, 24)) as pilot:
        await settle(quiet, pilot)
        assert not [n for n in notes(quiet) if "bound twice" in n]


async def test_an_edit_that_fails_says_why_through_the_one_handler(seeded, tmp_path):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3", "a")
        await pilot.pause()
        await pilot.press(*str(tmp_path / "nowhere"), "enter")
        await settle(app, pilot)
        failures = [n for n in notes(app) if n.startswith("Cannot add project")]
        assert len(failures) == 1 and "no such folder" in failures[0], notes(app)


async def test_a_user_action_that_fails_twice_is_answered_twice(seeded, tmp_path):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(2):
            await pilot.press("3", "a")
            await pilot.pause()
            await pilot.press(*str(tmp_path / "nowhere"), "enter")
            await settle(app, pilot)
        assert len([n for n in notes(app) if n.startswith("Cannot add project")]) == 2
