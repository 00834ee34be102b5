"""`workbench notebook` and `workbench sessions` on bad input: one line, exit 1, nothing recorded."""

from __future__ import annotations

import socket

from helpers import assert_one_line_error

BUSYBOX = '[experiments.x]\nimage = "busybox:latest"\ncommand = ["echo", "x"]\n'


def _no_runs(cli) -> None:
    assert cli("runs", "list", "--json").json() == []


def test_an_unknown_project_folder_is_refused(cli, tmp_path):
    assert_one_line_error(cli("notebook", str(tmp_path / "nowhere")), "nowhere")
    _no_runs(cli)


def test_a_port_in_use_is_refused_before_anything_is_recorded(cli, make_project):
    root = make_project(BUSYBOX)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(cli("notebook", str(root), "--port", str(port)), f"port {port}", "already in use")
    _no_runs(cli)


def test_a_machine_without_docker_is_refused(cli, make_project):
    root = make_project(BUSYBOX)
    result = cli("notebook", str(root), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert_one_line_error(result, "sessions need Docker on the machine", "local")
    _no_runs(cli)


def test_attach_to_an_unknown_or_ended_session_and_stop_of_a_run(cli, make_project, docker_client):
    assert_one_line_error(cli("notebook", "--attach", "feedbeef"), "no run 'feedbeef'")
    assert_one_line_error(cli("sessions", "stop", "feedbeef"), "no run 'feedbeef'")
    root = make_project(BUSYBOX)
    ran = cli("run", str(root), "--wait", "--json")
    assert ran.code == 0, ran.err
    run_id = ran.json()["id"]
    assert_one_line_error(cli("sessions", "stop", run_id), f"run {run_id} is not a session")
    assert_one_line_error(cli("notebook", "--attach", run_id), f"run {run_id} is not a session")
    assert cli("sessions", "list", "--json").json() == []
    assert "no sessions" in cli("sessions", "list").out


def test_attach_takes_no_project(cli, make_project):
    root = make_project(BUSYBOX)
    result = cli("notebook", str(root), "--attach", "feedbeef")
    assert result.code == 2 and "--attach takes only --port" in result.err
    assert cli("notebook").code == 2
