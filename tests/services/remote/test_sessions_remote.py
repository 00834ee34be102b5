"""A JupyterLab session on an SSH host's engine: published on the host's loopback only, reached here through
the detached forwarder (`workbench _tunnel ID`), which is started again by `--attach` when it is gone, and its
files brought back over the connection when it stops."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from helpers import wait_for
from jupyter_api import lab_status, put_text
from remote_hosts import copy_image, register, silent
from workbench.dirs import resolve_dirs
from workbench.services import Workbench
from workbench.services.images import runner_image, runner_tag

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def lab_on_host(remote_env, docker_client, tmp_path_factory):
    """The lab image, built here, then sent to the host's engine as `docker pull` would: its tag."""
    base = docker_client.images.get("python:3.11-slim").id
    wb = Workbench(resolve_dirs(tmp_path_factory.mktemp("lab-image")))
    try:
        runner_image(wb._services, base, packages=("jupyterlab",), probe="import jupyterlab", purpose="lab")
    finally:
        wb.close()
    tag = runner_tag("lab", base)
    copy_image(tag, remote_env.docker_host)
    return tag


def test_a_session_on_an_ssh_host_is_reached_through_its_tunnel(cli, remote_env, lab_on_host, home, tmp_path):
    register(cli, "gpu", remote_env.gpu, remote_env.user_key)
    said: list[str] = []
    wb = Workbench(progress=said.append)
    try:
        tag = lab_on_host
        root = tmp_path / "lab-project"
        root.mkdir()
        (root / "workbench.toml").write_text(f'[experiments.x]\nimage = "{tag}"\ncommand = ["true"]\n')
        (root / "notes.txt").write_text("start\n")

        session = wb.open_session(str(root), machine="gpu")
        assert session.machine == "gpu" and session.status == "running"
        assert lab_status(session.port, session.token) == 200
        run_dir = home / "runs" / session.id
        pid = int((run_dir / "tunnel.pid").read_text())
        assert b"_tunnel" in open(f"/proc/{pid}/cmdline", "rb").read()

        put_text(session.port, session.token, "notes.txt", "from the host\n")

        os.kill(pid, signal.SIGTERM)  # the forwarder gone (a reboot, a kill): --attach starts it again
        wait_for(lambda: not (run_dir / "tunnel.pid").exists(), timeout=15)
        assert lab_status(session.port, session.token) == 0
        assert wb.attach_session(session.id).url == session.url
        assert lab_status(session.port, session.token) == 200

        # gone again, and since then another program listens on its port, and its record lacks the host's
        # port (adopted from a launcher that died): a fresh port (said), the host's port asked of the engine,
        # and the other program never sees the token
        os.kill(int((run_dir / "tunnel.pid").read_text()), signal.SIGTERM)
        wait_for(lambda: not (run_dir / "tunnel.pid").exists(), timeout=15)
        handle = dict(wb._services.store.get_run(session.id)["handle"])
        handle.pop("port")
        wb._services.store.update_run(session.id, handle=handle)
        seen: list[bytes] = []
        with socket.socket() as foreign:
            foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            foreign.bind(("127.0.0.1", session.port))
            foreign.listen()
            foreign.settimeout(0.2)
            attached = threading.Event()

            def serve() -> None:
                while not attached.is_set():
                    try:
                        conn, _ = foreign.accept()
                    except OSError:
                        continue
                    seen.append(conn.recv(4096))
                    conn.close()

            other = threading.Thread(target=serve)
            other.start()
            try:
                moved = wb.attach_session(session.id)
            finally:
                attached.set()
                other.join()
        assert seen == [] and moved.port != session.port and lab_status(moved.port, moved.token) == 200
        assert f"port {session.port} is taken now; session {session.id} is reached on port {moved.port} instead" in said
        session = moved

        stopped = wb.stop_session(session.id)
        assert "notes.txt" in stopped.brought_back
        assert (root / "notes.txt").read_text() == "from the host\n"
        assert not (run_dir / "tunnel.pid").exists()
        wait_for(lambda: lab_status(session.port, session.token) == 0, timeout=15)
    finally:
        wb.close()


def test_a_session_whose_host_goes_silent_keeps_its_files_there_until_it_answers(cli, remote_env, lab_on_host,
                                                                                  tmp_path):
    """The host stops answering mid-session: the session shows it, `sessions stop` fails fast in one line and
    records nothing, the files stay safe there; once the host answers, the stop brings them back."""
    register(cli, "gpu", remote_env.gpu, remote_env.user_key)
    root = tmp_path / "away-project"
    root.mkdir()
    (root / "workbench.toml").write_text(f'[experiments.x]\nimage = "{lab_on_host}"\ncommand = ["true"]\n')
    (root / "notes.txt").write_text("start\n")
    opened = cli("notebook", str(root), "--machine", "gpu", "--json")
    assert opened.code == 0, opened.err
    session = opened.json()
    put_text(session["port"], session["token"], "notes.txt", "written there\n")
    with silent(remote_env.gpu):
        listed = wait_for(lambda: (s := cli("sessions", "list", "--json").json()[0])
                          and (s["status_reason"] or "").startswith("host unreachable") and s, timeout=60)
        assert listed["status"] == "running"
        began = time.monotonic()
        stopped = cli("sessions", "stop", session["id"])
        assert stopped.code == 1 and time.monotonic() - began < 15, stopped.err
        lines = stopped.err.strip().splitlines()
        assert len(lines) <= 2 and "gpu" in lines[0] and "Traceback" not in stopped.err, stopped.err
        assert (root / "notes.txt").read_text() == "start\n"
        assert cli("sessions", "list", "--json").json()[0]["status"] == "running"  # nothing recorded as stopped
    wait_for(lambda: not (cli("sessions", "list", "--json").json()[0]["status_reason"] or "").startswith(
        "host unreachable"), timeout=60)
    stopped = cli("sessions", "stop", session["id"], "--json")
    assert stopped.code == 0, stopped.err
    assert "notes.txt" in stopped.json()["brought_back"]
    assert (root / "notes.txt").read_text() == "written there\n"
