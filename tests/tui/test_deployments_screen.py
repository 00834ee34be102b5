"""The rollback question on the Deployments screen (issue 22 item 17) over fixed records shaped like
`deployments show`'s, their `rollback_to` by the service's rule (the real deploy-and-rollback run is in
test_registry_screens): it names the version the rollback brings back, the one kept that was live most
recently, and the one it leaves."""

from __future__ import annotations

from fixture_db import NOW
from test_run_screens import settle, until
from workbench.services.answers import DeploymentDetail, DeploymentSummary
from workbench.services.deploy import rollback_target
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.deployments import DeploymentsScreen


def serve_records(wb, targets: list[dict]) -> None:
    record = {"name": "digits", "model": "digits", "machine": "local", "port": 8080, "bind": "0.0.0.0",
              "auth": "none", "status": "live", "live_version": 4, "live_container": "workbench-serve-digits-v4",
              "health": "ok", "endpoint": "http://127.0.0.1:8080", "operation": None, "canary": None,
              "last_switch": None, "rollback_to": (rollback_target(targets) or {}).get("version"),
              "proxy": "workbench-proxy-digits", "status_reason": None, "health_at": NOW, "created_at": NOW - 900,
              "updated_at": NOW, "proxy_address": None}
    wb.deployments = lambda check=True: [DeploymentSummary.from_row(record)]
    wb.deployment = lambda name, check=True: DeploymentDetail.from_row(
        {**record, "events": [], "targets": targets, "traffic": None})


def target(version: int, state: str, state_at: float) -> dict:
    return {"deployment": "digits", "container": f"workbench-serve-digits-v{version}", "version": version,
            "state": state, "state_at": state_at}


async def test_the_question_names_the_version_it_goes_back_to(wb):
    serve_records(wb, [target(1, "removed", NOW - 900), target(2, "standby", NOW - 600),
                       target(3, "standby-gone", NOW - 300), target(4, "live", NOW - 300)])
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await until(app, pilot, lambda: isinstance(app.screen, DeploymentsScreen) and app.screen.loads)
        await pilot.press("b")
        await until(app, pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert app.screen.question == ("Roll digits back from v4 to v3? Requests keep being answered during "
                                       "the switch.")


async def test_with_no_version_kept_it_says_so_instead_of_asking(wb):
    serve_records(wb, [target(1, "removed", NOW - 900), target(4, "live", NOW - 300)])
    app = WorkbenchApp(wb, clock=lambda: NOW)
    said: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await until(app, pilot, lambda: isinstance(app.screen, DeploymentsScreen) and app.screen.loads)
        original = app.screen.notify
        app.screen.notify = lambda message, **kw: (said.append(str(message)), original(message, **kw))
        await pilot.press("b")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert said == ["digits has no earlier version kept to go back to"]
