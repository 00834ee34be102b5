"""The Models (5) and Deployments (6) screens (issue 12): register from a run's detail (M), alias and deploy
from Models (a, D), the live deployment on Deployments with its health and history, rollback (b) and stop
(s) — against this machine's real engine, with the stdlib server of tests/registry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from test_run_screens import settle, until
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.deployments import DeploymentsScreen
from workbench.tui.screens.models import ModelsScreen
from workbench.tui.screens.run_detail import RunDetailScreen

sys.path.append(str(Path(__file__).resolve().parents[1] / "registry"))
from helpers import free_port  # noqa: E402
from test_deploy_local import DEPLOY, SERVER, SPEC, TRAIN, which  # noqa: E402

pytestmark = pytest.mark.docker


def trained(wb, root, tag: str) -> str:
    run = wb.launch(str(root), overrides=[f"tag={tag}"])
    wb.wait(run["id"])
    assert wb.store.get_run(run["id"])["status"] == "succeeded"
    return run["id"]


async def test_register_alias_deploy_rollback_stop_from_the_app(wb, make_project):
    root = make_project(SPEC.replace("DEPLOY", DEPLOY), {"serve.py": SERVER, "train.py": TRAIN})
    first, second = trained(wb, root, "first"), trained(wb, root, "second")
    wb.register_model(first, "model.txt", "m")
    port = free_port()
    app = WorkbenchApp(wb)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            # M on a run's detail registers one of its artifacts
            app.push_screen(RunDetailScreen(second))
            await until(app, pilot, lambda: app.screen.run is not None)
            await pilot.press("M")
            await until(app, pilot, lambda: app.screen.query("#register-name"))
            app.screen.query_one("#register-name", Input).value = "m"
            app.screen.query_one("#register-name", Input).focus()
            await pilot.press("enter")
            await until(app, pilot, lambda: wb.store.latest_model_version("m")["version"] == 2)
            assert wb.store.latest_model_version("m")["run_id"] == second
            await pilot.press("escape")
            await pilot.press("5")
            await until(app, pilot, lambda: isinstance(app.screen, ModelsScreen) and len(app.screen.versions) == 2)
            table = app.screen.query_one("#models-table", DataTable)
            assert [k.value for k in table.rows] == ["m:2", "m:1"]  # newest first
            assert f"from run {second}" in str(app.screen.query_one("#models-lineage", Static).render())
            # a: alias the highlighted version
            await pilot.press("a")
            await until(app, pilot, lambda: app.screen.query("#prompt-value"))
            app.screen.query_one("#prompt-value", Input).value = "production"
            await pilot.press("enter")
            await until(app, pilot, lambda: wb.store.model_aliases("m") == {"production": 2})
            await until(app, pilot, lambda: str(app.screen.query_one("#models-table", DataTable)
                                                .get_cell("m:2", "aliases")) == "@production")
            # D: deploy the highlighted version on a machine picked in a form, then v1 beside it
            await pilot.press("j", "D")
            await until(app, pilot, lambda: app.screen.query("#deploy-port"))
            app.screen.query_one("#deploy-port", Input).value = str(port)
            app.screen.query_one("#deploy-port", Input).focus()
            await pilot.press("enter")
            await until(app, pilot, lambda: isinstance(app.screen, DeploymentsScreen) and app.screen.rows, timeout=90)
            assert which(port) == "first"
            wb.deploy("m:2", "local")
            await until(app, pilot, lambda: (app.screen.rows.get("m") or {}).get("live_version") == 2, timeout=30)
            table = app.screen.query_one("#deployments-table", DataTable)
            row = [str(c) for c in table.get_row("m")]
            assert row[:4] == ["m", "live", "v2", "ok"] and row[4] == f"http://127.0.0.1:{port}"
            assert "switched v1 → v2" in str(app.screen.query_one("#deployments-history", Static).render())
            # b: rollback, asked first
            await pilot.press("b")
            await settle(app, pilot)
            await pilot.press("y")
            await until(app, pilot, lambda: (app.screen.rows.get("m") or {}).get("live_version") == 1, timeout=30)
            assert which(port) == "first"
            # s: stop, asked first
            await pilot.press("s")
            await settle(app, pilot)
            await pilot.press("y")
            await until(app, pilot, lambda: (app.screen.rows.get("m") or {}).get("status") == "stopped", timeout=30)
            with pytest.raises(OSError):
                which(port)
    finally:
        if wb.store.get_deployment("m"):
            wb.stop_deployment("m", remove=True)


async def test_the_app_says_when_a_deployment_turns_unhealthy_whatever_screen_shows(wb, make_project, monkeypatch):
    import docker

    import workbench.tui.app as app_module

    monkeypatch.setattr(app_module, "HEALTH_SECONDS", 0.5)
    root = make_project(SPEC.replace("DEPLOY", DEPLOY), {"serve.py": SERVER, "train.py": TRAIN})
    wb.register_model(trained(wb, root, "first"), "model.txt", "h")
    wb.deploy("h", "local", port=free_port())
    serving = docker.from_env().containers.get(wb.store.get_deployment("h")["live_container"])
    app = WorkbenchApp(wb)
    said: list[str] = []
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            original = app.notify
            monkeypatch.setattr(app, "notify", lambda message, **kw: (said.append(str(message)), original(message, **kw)))
            await pilot.press("4")
            await until(app, pilot, lambda: app._health.get("h") == "ok")
            serving.pause()  # it stops answering
            await until(app, pilot, lambda: "h: v1 health failing" in said, timeout=30)
            serving.unpause()
            await until(app, pilot, lambda: "h: v1 health ok" in said, timeout=30)
            events = [e["kind"] for e in wb.deployment("h", check=False)["events"]]
            assert events.count("health") == 2
    finally:
        try:
            serving.unpause()
        except Exception:  # noqa: BLE001 - not paused
            pass
        wb.stop_deployment("h", remove=True)
