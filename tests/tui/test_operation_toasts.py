"""Issue 22, item 14: one launch or one deploy shows one notification at a time — its progress lines replace
it in place, then its outcome replaces it — instead of a stack of toasts over the log. Pilot at 80×24, a real
engine, a real launch from Projects and a real deploy from Models; what is on screen is read at every redraw
of the notifications."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from helpers import SAMPLES, free_port
from test_navigation_after_launch import launch_from_projects, wait_until
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.deployments import DeploymentsScreen
from workbench.tui.screens.models import ModelsScreen

sys.path.append(str(Path(__file__).resolve().parents[1] / "services"))
from test_deploy_local import DEPLOY, SERVER, SPEC, TRAIN  # noqa: E402

pytestmark = pytest.mark.docker


def watch_toasts(app) -> list[list[str]]:
    """Every state of the notifications on screen, as 'title: message' lists, one per redraw of them."""
    states: list[list[str]] = []
    redraw = app._refresh_notifications

    def recorded() -> None:
        states.append([f"{n.title}: {n.message}" for n in app._notifications])
        redraw()
    app._refresh_notifications = recorded
    return states


@pytest.mark.usefixtures("docker_client")
async def test_a_launch_and_a_deploy_show_one_notification_each_updated_in_place(wb, make_project):
    wb.add_project(str(SAMPLES / "hello-shell"))
    root = make_project(SPEC.replace("DEPLOY", DEPLOY), {"serve.py": SERVER, "train.py": TRAIN})
    trained = wb.launch(str(root), overrides=["tag=first"])
    wb.wait(trained.id)
    wb.register_model(trained.id, "model.txt", "m")
    port = free_port()
    app = WorkbenchApp(wb)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            states = watch_toasts(app)
            run_id = await launch_from_projects(app, pilot)
            seen = [toast for state in states for toast in state]
            print("launch, one notice in turn:", list(dict.fromkeys(seen)))
            assert max(len(state) for state in states) == 1, states
            assert any("snapshot" in toast for toast in seen)  # a progress line was shown, in place
            assert states[-1] == [f"Launched: run {run_id} started"]

            app.clear_notifications()
            states.clear()
            await pilot.press("5")
            await wait_until(app, pilot, lambda: isinstance(app.screen, ModelsScreen) and app.screen.versions)
            app.screen.query_one("#models-table", DataTable).focus()
            await pilot.press("D")
            await wait_until(app, pilot, lambda: app.screen.query("#deploy-port"))
            app.screen.query_one("#deploy-port", Input).value = str(port)
            app.screen.query_one("#deploy-port", Input).focus()
            await pilot.press("enter")
            await wait_until(app, pilot, lambda: isinstance(app.screen, DeploymentsScreen), timeout=90)
            seen = [toast for state in states for toast in state]
            print("deploy, one notice in turn:", list(dict.fromkeys(seen)))
            assert max(len(state) for state in states) == 1, states
            assert any("starting" in toast for toast in seen)  # the deploy's steps were shown, in place
            assert states[-1] == [f"Deployed: m: v1 serving at http://127.0.0.1:{port}"]
    finally:
        if wb._services.store.get_deployment("m"):
            wb.stop_deployment("m", remove=True)


async def test_an_operations_first_line_warning_is_kept_and_its_outcome_is_not_titled_as_a_failure(wb):
    """A cancel's worker is named for its failure (`Cannot cancel r1`): its outcome is titled `Run`, not
    that; a warning said as the operation's first line is carried into the outcome, as any later one is."""
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        states = watch_toasts(app)

        def cancel() -> None:
            app.say("warning: r1's follower did not answer; stopping its container directly")
            app.say("stopping r1")
            app.say_outcome("run r1 cancelled")

        worker = app.run_worker(cancel, name="Cannot cancel r1", group="run-actions", thread=True,
                                exit_on_error=False)
        await wait_until(app, pilot, lambda: worker.is_finished and states
                         and states[-1][-1:] and "cancelled" in states[-1][-1])
        assert max(len(state) for state in states) == 1  # one notice, replaced in place
        outcome = states[-1][-1]
        assert outcome.startswith("Run: run r1 cancelled"), outcome
        assert "warning: r1's follower did not answer" in outcome, outcome
        assert "Cannot cancel" not in outcome
