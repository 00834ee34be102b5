"""The Models (5) and Deployments (6) screens (issue 12): register from a run's detail (M), alias and deploy
from Models (a, D), the live deployment on Deployments with its health and history, rollback (b) and stop
(s) — against this machine's real engine, with the stdlib server of tests/services. Issue 21: the traffic
figures per version after real requests, a canary's share promoted from the screen (P), the token shown
only when asked (t); and an 80×24 snapshot of the panel over fixed records."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from fixture_db import NOW
from test_run_screens import settle, until
from test_snapshots import _settle, frozen_app  # noqa: F401 - a fixture
from workbench.services.answers import DeploymentDetail, DeploymentSummary
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.deployments import DeploymentsScreen
from workbench.tui.screens.models import ModelsScreen
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.widgets.traffic import canary_lines, traffic_lines

sys.path.append(str(Path(__file__).resolve().parents[1] / "services"))
from helpers import free_port  # noqa: E402
from test_deploy_local import DEPLOY, SERVER, SPEC, TRAIN, which  # noqa: E402

pytestmark = pytest.mark.docker


def notifications(app, monkeypatch) -> list[str]:
    """What the app says from now on, in order."""
    said: list[str] = []
    original = app.notify
    monkeypatch.setattr(app, "notify", lambda message, **kw: (said.append(str(message)), original(message, **kw)))
    return said


def trained(wb, root, tag: str) -> str:
    run = wb.launch(str(root), overrides=[f"tag={tag}"])
    wb.wait(run.id)
    assert wb._services.store.get_run(run.id)["status"] == "succeeded"
    return run.id


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
            await until(app, pilot, lambda: wb._services.store.latest_model_version("m")["version"] == 2)
            assert wb._services.store.latest_model_version("m")["run_id"] == second
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
            await until(app, pilot, lambda: wb._services.store.model_aliases("m") == {"production": 2})
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
            await until(app, pilot, lambda: getattr(app.screen.rows.get("m"), "live_version", None) == 2, timeout=30)
            table = app.screen.query_one("#deployments-table", DataTable)
            row = [str(c) for c in table.get_row("m")]
            assert row[:4] == ["m", "live", "v2", "ok"] and row[4] == f"http://127.0.0.1:{port}"
            assert "switched v1 → v2" in str(app.screen.query_one("#deployments-history", Static).render())
            # b: rollback, asked first, naming both versions (issue 22 item 17)
            await pilot.press("b")
            await until(app, pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert app.screen.question.startswith("Roll m back from v2 to v1?")
            await pilot.press("y")
            await until(app, pilot, lambda: getattr(app.screen.rows.get("m"), "live_version", None) == 1, timeout=30)
            assert which(port) == "first"
            # s: stop, asked first
            await pilot.press("s")
            await settle(app, pilot)
            await pilot.press("y")
            await until(app, pilot, lambda: getattr(app.screen.rows.get("m"), "status", None) == "stopped", timeout=30)
            with pytest.raises(OSError):
                which(port)
    finally:
        if wb._services.store.get_deployment("m"):
            wb.stop_deployment("m", remove=True)


async def test_the_app_says_when_a_deployment_turns_unhealthy_whatever_screen_shows(wb, make_project, monkeypatch):
    import docker

    import workbench.tui.app as app_module

    monkeypatch.setattr(app_module, "HEALTH_SECONDS", 0.5)
    root = make_project(SPEC.replace("DEPLOY", DEPLOY), {"serve.py": SERVER, "train.py": TRAIN})
    wb.register_model(trained(wb, root, "first"), "model.txt", "h")
    wb.deploy("h", "local", port=free_port())
    serving = docker.from_env().containers.get(wb._services.store.get_deployment("h")["live_container"])
    app = WorkbenchApp(wb)
    said = notifications(app, monkeypatch)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("4")
            await until(app, pilot, lambda: app._health.get("h") == "ok")
            serving.pause()  # it stops answering
            await until(app, pilot, lambda: "h: v1 health failing" in said, timeout=30)
            serving.unpause()
            await until(app, pilot, lambda: "h: v1 health ok" in said, timeout=30)
            events = [(e["kind"], e["message"]) for e in wb.deployment("h", check=False).events]
            assert [kind for kind, _ in events].count("health") == 2, events
    finally:
        try:
            serving.unpause()
        except Exception:  # noqa: BLE001 - not paused
            pass
        wb.stop_deployment("h", remove=True)


def screen_text(app) -> str:
    """Every word the Deployments screen draws: its texts and its table's cells."""
    table = app.screen.query_one("#deployments-table", DataTable)
    cells = [str(c) for key in table.rows for c in table.get_row(key)]
    return "\n".join([str(w.render()) for w in app.screen.query(Static)] + cells)


def call(port: int, path: str = "/which", token: str | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_canary_share_figures_and_promote_from_the_screen(wb, make_project, monkeypatch):
    root = make_project(SPEC.replace("DEPLOY", DEPLOY), {"serve.py": SERVER, "train.py": TRAIN})
    wb.register_model(trained(wb, root, "first"), "model.txt", "c")
    wb.register_model(trained(wb, root, "second"), "model.txt", "c")
    port = free_port()
    wb.deploy("c:1", "local", port=port)
    app = WorkbenchApp(wb)
    said = notifications(app, monkeypatch)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("6")
            await until(app, pilot, lambda: isinstance(app.screen, DeploymentsScreen) and app.screen.rows)
            text = screen_text(app)
            assert "v1 live 100%" in text and "no token" in text
            # P and t on a deployment without a canary or a token: one line each, nothing changes
            await pilot.press("P")
            await until(app, pilot, lambda: any("has no canary to promote" in m for m in said))
            await pilot.press("t")
            await until(app, pilot, lambda: any("asks callers for no token" in m for m in said))
            assert not app.screen.query("ConfirmScreen")
            wb.deploy("c:2", "local", canary=50, canary_for=600, max_error_rate=5)
            answers = [call(port) for _ in range(40)] + [call(port, "/missing") for _ in range(10)]
            assert answers.count(200) == 40 and answers.count(404) == 10
            detail = lambda: str(app.screen.query_one("#deployments-history", Static).render())  # noqa: E731
            await until(app, pilot, lambda: "canary v2 at 50%" in detail() and "v2 canary 50%" in detail())
            shown = app.screen.details["c"].traffic["versions"]
            # the proxy's counters since the canary began, per version: every request counted, once
            assert sum(v["since_switch"]["requests"] for v in shown) == 50, shown
            assert [v["role"] for v in shown] == ["live", "canary"] and [v["share"] for v in shown] == [50, 50]
            assert all(v["since_switch"]["requests"] and v["since_switch"]["p50_ms"] is not None for v in shown)
            assert "rolled back above 5% errors" in detail() and "min" in detail()  # ~10 min left
            lines = detail().splitlines()
            since_row = lines[next(i for i, line in enumerate(lines) if line.startswith("v1 live 50%")) + 1]
            assert since_row.split()[-1] == f"{shown[0]['since_switch']['requests']:,}"  # the live version's count
            # P asks first; n leaves the canary as it was
            await pilot.press("P")
            await settle(app, pilot)
            await pilot.press("n")
            await settle(app, pilot)
            assert wb._services.store.get_deployment("c")["canary"] is not None
            await pilot.press("P")
            await settle(app, pilot)
            await pilot.press("y")
            await until(app, pilot, lambda: getattr(app.screen.rows.get("c"), "live_version", None) == 2
                        and not app.screen.rows["c"].canary, timeout=30)
            assert "c: v2 serving every request" in said
            await until(app, pilot, lambda: "canary-promoted" in detail())
            assert "canary v2" not in detail() and "v2 live 100%" in detail()
            assert {call(port) for _ in range(10)} == {200} and which(port) == "second"
            # b during a canary ends it (asked first): the live version takes every request again
            wb.deploy("c:1", "local", canary=30, canary_for=600)
            await until(app, pilot, lambda: "canary v1 at 30%" in detail())
            await pilot.press("b")
            await settle(app, pilot)
            await pilot.press("y")
            await until(app, pilot, lambda: "canary-rolled-back" in detail(), timeout=30)
            assert app.screen.rows["c"].live_version == 2 and not app.screen.rows["c"].canary
            assert {which(port) for _ in range(10)} == {"second"}
    finally:
        wb.stop_deployment("c", remove=True)


async def test_the_token_is_on_screen_only_when_asked(wb, make_project, monkeypatch):
    root = make_project(SPEC.replace("DEPLOY", DEPLOY + 'auth = "token"\n'), {"serve.py": SERVER, "train.py": TRAIN})
    wb.register_model(trained(wb, root, "first"), "model.txt", "t")
    port = free_port()
    wb.deploy("t:1", "local", port=port)
    secret = wb.deployment_token("t")
    app = WorkbenchApp(wb)
    said = notifications(app, monkeypatch)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            assert call(port) == 401 and [call(port, token=secret) for _ in range(5)] == [200] * 5
            await pilot.press("6")
            await until(app, pilot, lambda: isinstance(app.screen, DeploymentsScreen) and app.screen.details.get("t"))
            await until(app, pilot, lambda: "token required" in screen_text(app))
            assert secret not in screen_text(app) and not any(secret in m for m in said)
            # the answered requests are counted (the one refused before the proxy's handler is not)
            assert app.screen.details["t"].traffic["versions"][0]["since_switch"]["requests"] >= 5
            await pilot.press("t")
            await until(app, pilot, lambda: any(secret in m for m in said))
            assert app.clipboard == secret
            assert secret not in screen_text(app)  # in the notification only, never in the panel
    finally:
        wb.stop_deployment("t", remove=True)


def deployment_records() -> tuple[list[DeploymentSummary], dict[str, DeploymentDetail]]:
    """What `wb.deployments()` and `wb.deployment()` give for a canary in progress on a token-guarded
    deployment (shaped like a real one's; fixed figures, so the snapshot holds still)."""
    def figures(requests, rps, errors, p50, p99):
        return {"requests": requests, "rps": rps, "errors": errors, "error_pct": round(100 * errors / requests, 2),
                "p50_ms": p50, "p99_ms": p99}
    canary = {"version": 3, "container": "workbench-serve-digits-v3-1a2b3c", "share": 10, "window": 600.0,
              "started": NOW - 95, "until": NOW + 505, "max_error_rate": 1.0, "watched_at": NOW - 2, "note": None}
    events = [
        {"ts": NOW - 7200, "kind": "deploy", "message": "digits: v1 live on local:8080 (ready after 0.3 s)"},
        {"ts": NOW - 3600, "kind": "deploy-failed", "message": "digits:2 refused: POST /predict answered HTTP 500: "
                                                               '{"error": "shapes (64,) and (784,) not aligned"}'},
        {"ts": NOW - 1800, "kind": "switch", "message": "digits: switched v1 → v2 in 1.2 s"},
        {"ts": NOW - 95, "kind": "canary", "message": "digits: v3 (ready after 0.4 s) gets 10% of requests for "
                                                      "600 s, v2 the rest; rolled back by itself above 1% errors"}]
    record = {"name": "digits", "model": "digits", "machine": "local", "port": 8080, "bind": "0.0.0.0",
              "auth": "token", "status": "live", "live_version": 2, "live_container": "workbench-serve-digits-v2-9f8e7d",
              "health": "ok", "endpoint": "http://127.0.0.1:8080", "operation": None, "canary": canary,
              "last_switch": events[2], "proxy": "workbench-proxy-digits", "status_reason": None,
              "health_at": NOW - 2, "created_at": NOW - 7200, "updated_at": NOW - 2, "proxy_address": None,
              "rollback_to": None}
    traffic = {"read_ms": 3.1, "error": None, "versions": [
        {"version": 2, "role": "live", "share": 90, "since": NOW - 1800,
         "last_minute": figures(2712, 45.2, 0, 4.0, 11.0), "since_switch": figures(80117, 44.5, 3, 4.0, 12.0)},
        {"version": 3, "role": "canary", "share": 10, "since": NOW - 95,
         "last_minute": figures(301, 5.0, 1, 5.0, 14.0), "since_switch": figures(468, 4.9, 1, 5.0, 15.0)}]}
    return ([DeploymentSummary.from_row(record)],
            {"digits": DeploymentDetail.from_row({**record, "events": events, "targets": [], "traffic": traffic})})


def test_deployments_snapshot(snap_compare, frozen_app, seeded):  # noqa: F811 - the fixture imported above
    """80×24: the canary's share and time left, both versions' figures, the token state (never the token)."""
    listed, details = deployment_records()
    seeded.deployments = lambda check=True: listed
    seeded.deployment = lambda name, check=True: details[name]

    async def go(pilot):
        await pilot.press("6")
        await _settle(pilot)
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=go)


def test_the_panel_says_what_it_cannot_tell():
    """A proxy that did not answer, no sample a minute back, a canary no watcher judged, a window over."""
    assert traffic_lines({"versions": [], "read_ms": None, "error": "proxy of d is not running"}) == [
        "[yellow]traffic unknown: proxy of d is not running[/]"]
    (_, last_minute, since) = traffic_lines({"read_ms": 2.0, "error": None, "versions": [
        {"version": 4, "role": "live", "share": 100, "since": None, "last_minute": None,
         "since_switch": {"requests": 0, "rps": 0.0, "errors": 0, "error_pct": None, "p50_ms": None,
                          "p99_ms": None}}]})
    assert last_minute.split() == ["v4", "live", "100%", "last", "minute"] + "no sample from a minute ago yet".split()
    assert since.split() == ["since", "the", "start", "0.0", "-", "-", "-", "0"]
    note = "d: canary v5 held at 10% since 14:13:19: no watcher judged it (was this workstation asleep?)"
    held = {"version": 5, "share": 10, "until": NOW - 1, "max_error_rate": 0.5, "note": note}
    assert canary_lines(held, NOW) == [
        "[b cyan]canary v5 at 10%[/] · window over: the verdict is due · rolled back above 0.5% errors",
        f"[yellow]{note}[/]"]
    assert "1 min 05 s left" in canary_lines({**held, "until": NOW + 65.4, "note": None}, NOW)[0]
