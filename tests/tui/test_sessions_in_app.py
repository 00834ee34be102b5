"""JupyterLab sessions in the app (issue 24), at 80×24 with the keyboard: a running session on the Dashboard
(machine, GPUs, duration, cost so far) and on the Runs screen (marked ⌁); `o`/`u` shows its URL and copies it,
`s`/`x` stops it after asking, and the outcome says which files came back. The session is real: JupyterLab in
a container on the local engine, edited through its REST API."""

from __future__ import annotations

import json
import urllib.request

from textual.widgets import DataTable

from fixture_db import NOW, seed
from test_remote_runs_in_app import REMOTE_GPU
from test_run_screens import open_runs, row_keys, settle, until
from test_snapshots import _settle, frozen_app  # noqa: F401 - a fixture, used by name
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.run_detail import RunDetailScreen

SIZE = (80, 24)
LAB_SPEC = '[project]\nname = "lab"\n\n[experiments.explore]\nimage = "python:3.11-slim"\ncommand = ["true"]\n'


def notices(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def live_row(app, run_id: str) -> list[str]:
    table = app.screen.query_one("#live", DataTable)
    return [str(value) for value in table.get_row(run_id)]


def put_file(session, path: str, text: str) -> None:
    """A file saved in JupyterLab (its contents API), as the user's editor does."""
    body = json.dumps({"type": "file", "format": "text", "content": text}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{session.port}/api/contents/{path}?token={session.token}",
                                     method="PUT", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status in (200, 201)


async def test_a_session_is_shown_reached_and_stopped_from_the_app(wb, make_project, docker_client):
    seed(wb, count=2)  # finished runs: `o` on one of them is refused
    project = make_project(LAB_SPEC)
    session = wb.open_session(str(project))
    try:
        app = WorkbenchApp(wb)
        async with app.run_test(size=SIZE) as pilot:
            # the Dashboard: among the running runs, marked, with where it runs, what it holds and its cost
            await until(app, pilot, lambda: session.id in app.screen.query_one("#live", DataTable).rows)
            row = live_row(app, session.id)
            assert row[1] == "⌁ lab/explore"
            assert row[3:] == ["no GPU", "on local"]  # holds no GPU; the local machine has no rate

            await pilot.press("o")
            await until(app, pilot, lambda: app.clipboard == session.url)
            await until(app, pilot, lambda: any(session.url in n for n in notices(app)))
            assert f"Session {session.id}: {session.url}\n(copied where the terminal allows)" in notices(app)

            # a finished run in the recent results is no session
            app.screen.query_one("#recent", DataTable).focus()
            await pilot.press("o")
            await until(app, pilot, lambda: any("r0000001 is a run, not a session" in n for n in notices(app)))

            # the Runs screen: the session's row is marked; `u` copies the URL there, enter opens it like a run
            app.copy_to_clipboard("")
            await open_runs(app, pilot)
            await until(app, pilot, lambda: session.id in row_keys(app))
            table = app.screen.query_one("#runs-table", DataTable)
            assert str(table.get_cell(session.id, "project/experiment")) == "⌁ lab/explore"
            assert str(table.get_cell("r0000001", "project/experiment")) == "hello-shell/hello"
            table.move_cursor(row=table.get_row_index(session.id))
            await pilot.press("u")
            await until(app, pilot, lambda: app.clipboard == session.url)
            await pilot.press("enter")
            await until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run is not None)
            assert app.screen.run.kind == "session"
            await pilot.press("escape")
            await settle(app, pilot)

            # saved in JupyterLab, then stopped from the Runs screen: asked first; `n` leaves it running
            put_file(session, "from_lab.py", "print('written in the lab')\n")
            await pilot.press("x")
            await until(app, pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert app.screen.question == f"Stop session {session.id}? Its changed files come back into the project."
            await pilot.press("n")
            await settle(app, pilot)
            assert wb.sessions()[0].status == "running"

            await pilot.press("x")
            await until(app, pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(app, pilot, lambda: any(f"session {session.id} " in n and "from_lab.py" in n
                                                for n in notices(app)), timeout=90)
        stopped = wb.sessions()[0]
        assert stopped.status in ("cancelled", "succeeded") and stopped.finished_at is not None
        assert (project / "from_lab.py").read_text() == "print('written in the lab')\n"
        assert docker_client.containers.list(all=True, filters={"label": f"workbench.run-id={session.id}"}) == []
    finally:
        if wb.sessions()[0].status in ("queued", "running"):
            wb.stop_session(session.id)


async def test_a_session_that_has_ended_says_so_and_a_run_is_not_stopped_as_a_session(wb, make_project,
                                                                                     docker_client):
    seed(wb, count=1)
    project = make_project(LAB_SPEC)
    session = wb.open_session(str(project))
    wb.stop_session(session.id)
    app = WorkbenchApp(wb)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        await until(app, pilot, lambda: session.id in row_keys(app))
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=table.get_row_index(session.id))
        await pilot.press("u")  # attach refuses: its failure is the operation's one notice
        await until(app, pilot, lambda: any(f"Cannot reach session {session.id}: session {session.id} has ended"
                                            in n for n in notices(app)))
        await pilot.press("x")  # ended: asked whether to bring its files back (once: nothing new comes)
        await until(app, pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert app.screen.question.startswith(f"Session {session.id} has ended (")
        await pilot.press("y")
        await until(app, pilot, lambda: any(n.startswith(f"Session {session.id}: session {session.id} ")
                                            for n in notices(app)))

        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=table.get_row_index("r0000000"))
        await pilot.press("x")
        await until(app, pilot, lambda: any("r0000000 is a run, not a session" in n for n in notices(app)))
        assert not isinstance(app.screen, ConfirmScreen)
    assert wb.show("r0000000").status == "succeeded"


def running_session(wb, run_id: str = "5e551017") -> None:
    """A session running on the SSH machine gpu-a (registered; nothing listens there), holding one of its GPUs
    at $2.40 an hour, started ten minutes before the frozen clock."""
    wb.add_machine("gpu-a", ssh="root@127.0.0.1:1")
    wb._services.store.insert_run({
        "id": run_id, "project": "mnist-notebook", "project_path": "/p", "experiment": "train", "status": "queued",
        "machine": "gpu-a", "executor": "docker", "created_at": NOW - 600, "gpu_uuids": [REMOTE_GPU],
        "hourly_cost": 2.4, "gpu_share": 1.0, "kind": "session",
        "argv": ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=/wb/src"],
    })
    wb._services.store.mark_running(run_id, {"container": "c0ffee", "run_dir": "/root/.workbench/runs/" + run_id,
                                             "machine": "gpu-a", "port": 49152}, NOW - 600)


def test_dashboard_with_a_session(snap_compare, frozen_app, seeded, monkeypatch):  # noqa: F811
    """At 80×24 the running session reads as one: ⌁, its GPU, its cost so far and its machine."""
    running_session(seeded)
    # the SSH machine's live sampler would say "connecting" or "unreachable" depending on timing
    monkeypatch.setattr(WorkbenchApp, "restart_fleet", lambda app: None)

    async def go(pilot):
        await _settle(pilot)
        assert isinstance(pilot.app.screen, DashboardScreen)
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=go)
