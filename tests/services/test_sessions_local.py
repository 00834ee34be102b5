"""JupyterLab sessions on the local Docker engine, end to end: the sample notebook project (its Dockerfile, then
the lab layer), reached with its token, edited through Jupyter's REST API while a file is also edited locally,
stopped, and its files brought back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from jupyter_api import put_contents, status

from workbench.cli.runs_table import runs_table
from workbench.errors import WorkbenchError
from workbench.machines.gpus import GpuInventory
from workbench.machines.nvidia_smi import GpuReading

def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


@pytest.fixture
def wb(home, docker_client):
    from workbench.services import Workbench

    bench = Workbench()
    yield bench
    for session in bench.sessions():
        if session.status in ("queued", "running"):
            bench.stop_session(session.id)
    bench.close()


def test_a_session_opens_is_edited_on_both_sides_and_brings_its_files_back(wb, project, home, docker_client, cli,
                                                                            monkeypatch):
    session = wb.open_session(str(project))
    assert session.status == "running" and session.machine == "local"
    assert session.url == f"http://127.0.0.1:{session.port}/lab?token={session.token}"
    assert len(session.token) == 48
    # ready means answering with the token; without it, refused
    assert status(f"http://127.0.0.1:{session.port}/api/status?token={session.token}") == 200
    assert status(f"http://127.0.0.1:{session.port}/api/contents") == 403
    # the token is in no byte of the database (WAL included)
    for db in home.glob("*.db*"):
        assert session.token.encode() not in db.read_bytes(), db
    row = next(r for r in wb.runs() if r.id == session.id)
    assert row.kind == "session"
    assert any(line.startswith(session.id) and "session: mnist-notebook/train" in line
               for line in runs_table([row], 120))  # `runs list` says it
    assert [(s.id, s.status, s.url) for s in wb.sessions()] == [(session.id, "running", session.url)]
    # a proxy in the environment (dead here) is never asked: the token would go to it, and the wait fail
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    dead = f"http://127.0.0.1:{_dead_port()}"
    started = time.monotonic()
    attached = cli("notebook", "--attach", session.id, env={"http_proxy": dead, "HTTP_PROXY": dead,
                                                           "all_proxy": dead, "ALL_PROXY": dead})
    assert attached.code == 0 and attached.out.strip() == session.url, attached.err
    assert time.monotonic() - started < 60
    # its home is the container's own, not in its outputs (hashed and fetched as artifacts when it stops)
    (container,) = docker_client.containers.list(filters={"label": f"workbench.run-id={session.id}"})
    assert container.exec_run(["sh", "-c", 'test -d "$HOME/.local/share/jupyter" && echo $HOME']).output == \
        b"/tmp/home\n"
    out_dir = home / "runs" / session.id / "out"

    notebook = {"cells": [{"cell_type": "code", "source": "print(2)", "metadata": {}, "outputs": [],
                           "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    put_contents(session.port, session.token, "explore.ipynb", {"type": "notebook", "format": "json", "content": notebook})
    put_contents(session.port, session.token, "serve.py", {"type": "file", "format": "text", "content": "print('lab')\n"})
    local_serve = (project / "serve.py").read_text() + "# changed here too\n"
    (project / "serve.py").write_text(local_serve)

    stopped = wb.stop_session(session.id)
    assert stopped.status in ("succeeded", "cancelled") and stopped.finished_at is not None
    assert "explore.ipynb" in stopped.brought_back
    assert f"serve.session-{session.id}.py" in stopped.brought_back
    assert "".join(json.loads((project / "explore.ipynb").read_text())["cells"][0]["source"]) == "print(2)"
    assert (project / "serve.py").read_text() == local_serve  # the local edit is never overwritten
    assert (project / f"serve.session-{session.id}.py").read_text() == "print('lab')\n"
    assert not (project / ".ipynb_checkpoints").exists()
    assert not (out_dir / ".home").exists() and not any(out_dir.glob(".*"))
    assert docker_client.containers.list(all=True, filters={"label": f"workbench.run-id={session.id}"}) == []
    assert wb.gpu_holders() == {}
    # idempotent: stopped again, nothing is brought back twice
    assert wb.stop_session(session.id).brought_back == stopped.brought_back
    events = [e for e in wb.show(session.id).events if e.kind == "brought-back"]
    assert len(events) == 1
    with pytest.raises(WorkbenchError, match="has ended"):
        wb.attach_session(session.id)
    with pytest.raises(WorkbenchError, match="is a JupyterLab session; a session is not rerun"):
        wb.rerun(session.id)
    assert wb.sessions()[0].url is None


def test_a_lab_layer_that_cannot_be_built_fails_the_session_with_the_reason(wb, make_project):
    root = make_project('[experiments.x]\nimage = "busybox:latest"\ncommand = ["true"]\n')
    with pytest.raises(WorkbenchError, match="lacks the lab runner"):
        wb.open_session(str(root))
    (run,) = wb.sessions()
    assert run.status == "failed" and "lacks the lab runner (jupyterlab)" in run.status_reason


def test_no_machine_with_free_gpus_refuses_or_queues(home, project):
    from workbench.services import Workbench

    busy = GpuReading(0, "GPU-3a9a2f4c-6b3e-4c8e-9d52-6f0e1c7d2a11", "NVIDIA H100 80GB HBM3", memory_total=80 << 30,
                      memory_used=60 << 30, utilization=90.0)
    wb = Workbench(gpu_probe=lambda: GpuInventory([busy], driver="580.159.04"))
    try:
        with pytest.raises(WorkbenchError, match="no machine can take it now .waiting for 1 free GPU on local"):
            wb.open_session(str(project), gpus=1)
        assert wb.sessions() == []  # nothing recorded
        queued = wb.open_session(str(project), gpus=1, queue=True)
        assert queued.status == "queued" and queued.url is None
        with pytest.raises(WorkbenchError, match="still queued"):
            wb.attach_session(queued.id)
        assert wb.stop_session(queued.id).status == "cancelled"
    finally:
        wb.close()


def test_a_port_whose_last_connection_is_in_time_wait_is_free_to_ask_for():
    """Docker and the forwarder bind with SO_REUSEADDR; a port they can take is not refused up front (here:
    the last forwarder on it served a connection and ended a moment ago)."""
    from workbench.machines.tunnel import bind_local
    from workbench.services.session_setup import check_local_port

    with bind_local(0) as listener:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # this side closes first: its end (on `port`) waits in TIME_WAIT
        client.recv(1)
        client.close()
    check_local_port(port)


def test_an_interrupted_copy_leaves_no_working_copy_and_the_next_launch_copies_it_whole(home, tmp_path):
    from workbench.execution.hosts import LocalHost
    from workbench.services.session_setup import new_session_file, prepare_session

    snapshot = tmp_path / "snapshot"
    (snapshot / "data").mkdir(parents=True)
    (snapshot / "train.py").write_text("print(1)\n")
    (snapshot / "data" / "a.txt").write_text("a\n")
    os.mkfifo(snapshot / "data" / "pipe")  # shutil cannot copy it: the copy fails half-way, as a kill would
    local_dir, runs_root = tmp_path / "local" / "r1", tmp_path / "runs"
    new_session_file(local_dir, 8899)
    host = LocalHost(runs_root)
    with pytest.raises(WorkbenchError, match="cannot copy"):
        prepare_session(local_dir, host, host.run_dir("r1"), str(snapshot), {})
    assert sorted(p.name for p in (runs_root / "r1").iterdir()) == []  # no work/, no half copy left
    (snapshot / "data" / "pipe").unlink()
    (runs_root / "r1" / "work.tmp-1").mkdir()  # left by a launcher killed mid-copy
    env: dict[str, str] = {}
    where, publish = prepare_session(local_dir, host, host.run_dir("r1"), str(snapshot), env)
    assert where == str(runs_root / "r1" / "work") and publish == ("127.0.0.1", 8888, 8899)
    assert (runs_root / "r1" / "work" / "data" / "a.txt").read_text() == "a\n"
    assert sorted(p.name for p in (runs_root / "r1").iterdir()) == ["work"]
    assert env["HOME"] == "/tmp/home" and len(env["JUPYTER_TOKEN"]) == 48


def _sleeper(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])


def test_stopping_a_forwarder_kills_no_other_process_that_has_its_pid(tmp_path):
    """A pid file left by a dead forwarder: its pid now another session's forwarder, or any process with
    `_tunnel ID` in its command line. Neither holds the session's tunnel.lock: neither is killed."""
    from workbench.services.sessions import _tunnel_alive, stop_tunnel

    run_dir = tmp_path / "3fa1b2c4"
    run_dir.mkdir()
    (run_dir / "tunnel.lock").touch()
    for other in (_sleeper("_tunnel", "3fa1b2c4"), _sleeper("_tunnel", "9e8d7c6b")):
        try:
            (run_dir / "tunnel.pid").write_text(str(other.pid))
            assert not _tunnel_alive(run_dir)
            stop_tunnel(run_dir)
            time.sleep(0.3)
            assert other.poll() is None, "a process that is not the session's forwarder was killed"
            assert not (run_dir / "tunnel.pid").exists()
        finally:
            other.kill()
            other.wait()


def test_a_forwarder_stops_once_its_session_is_gone_from_the_history(home, monkeypatch):
    """`runs rm`: its record gone, the forwarder's look answers NotFound, and it stops (not forever)."""
    from workbench.services import Workbench
    from workbench.services import sessions as sessions_module

    monkeypatch.setattr(sessions_module, "TUNNEL_WATCH", 0.05)
    bench = Workbench()
    try:
        stop = threading.Event()
        watcher = threading.Thread(target=sessions_module._watch_session, args=(bench._services, "0badc0de", stop))
        watcher.start()
        assert stop.wait(5), "the forwarder kept going for a session that no longer exists"
        watcher.join(5)
    finally:
        bench.close()


def test_waiting_for_a_session_whose_forwarder_died_fails_at_once_and_sends_no_token(home, tmp_path):
    """Its forwarder gone (it could not listen: the port was taken since): the wait says why at once, and
    the program that holds the port now never sees the token."""
    from workbench.services import Workbench
    from workbench.services.sessions import wait_ready

    run_dir = tmp_path / "5e551011"
    run_dir.mkdir()
    (run_dir / "tunnel.err").write_text("workbench: error: 127.0.0.1:1234 is already in use\n")
    (run_dir / "tunnel.lock").touch()
    seen: list[bytes] = []
    bench = Workbench()
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        foreign.settimeout(0.2)

        def serve() -> None:
            try:
                conn, _ = foreign.accept()
                seen.append(conn.recv(4096))
                conn.close()
            except OSError:
                pass

        listener = threading.Thread(target=serve)
        listener.start()
        run = {"id": "5e551011", "machine": "local", "executor": "docker",
               "handle": {"run_dir": str(run_dir), "machine": "local", "container": "none", "port": 40000}}
        started = time.monotonic()
        try:
            with pytest.raises(WorkbenchError, match="forwarder of session 5e551011 is gone: 127.0.0.1:1234 is "
                                                     "already in use"):
                wait_ready(bench._services, run, foreign.getsockname()[1], "secret-token", forwarder=run_dir)
        finally:
            listener.join()
            bench.close()
    assert time.monotonic() - started < 5 and seen == []


def test_an_adopted_session_keeps_its_published_port(home, docker_client):
    """Its launcher died before recording the handle: the adopted one has the port the engine published."""
    from workbench.services import Workbench

    bench = Workbench()
    executor = bench._services.executors.get("local", "docker")
    container = docker_client.containers.run(
        "busybox:latest", ["sleep", "60"], detach=True, ports={"8888/tcp": ("127.0.0.1", None)},
        labels={"workbench.run-id": "ad0971ed", "workbench.instance": executor.instance, "workbench.kind": "run"})
    try:
        container.reload()
        published = int(container.attrs["NetworkSettings"]["Ports"]["8888/tcp"][0]["HostPort"])
        adopted = executor.adopt("ad0971ed", "/nowhere/ad0971ed")
        assert adopted is not None and adopted.container == container.id and adopted.port == published
    finally:
        container.remove(force=True)
        bench.close()
