"""A JupyterLab session on an SSH host's engine: published on the host's loopback only, reached here through
the detached forwarder (`workbench _tunnel ID`), which is started again by `--attach` when it is gone, and its
files brought back over the connection when it stops."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request

import pytest

from helpers import wait_for
from remote_hosts import copy_image, register
from workbench.services import Workbench
from workbench.services.images import runner_image, runner_tag

pytestmark = pytest.mark.docker


def _status(port: int, token: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=10) as answer:
            return answer.status
    except (urllib.error.URLError, OSError):
        return 0


def test_a_session_on_an_ssh_host_is_reached_through_its_tunnel(cli, remote_env, docker_client, home, tmp_path):
    register(cli, "gpu", remote_env.gpu, remote_env.user_key)
    wb = Workbench()
    try:
        # the lab image, built here (the host has no package index), then sent there as `docker pull` would
        base = docker_client.images.get("python:3.11-slim").id
        runner_image(wb._services, base, packages=("jupyterlab",), probe="import jupyterlab", purpose="lab")
        tag = runner_tag("lab", base)
        copy_image(tag, remote_env.docker_host)
        root = tmp_path / "lab-project"
        root.mkdir()
        (root / "workbench.toml").write_text(f'[experiments.x]\nimage = "{tag}"\ncommand = ["true"]\n')
        (root / "notes.txt").write_text("start\n")

        session = wb.open_session(str(root), machine="gpu")
        assert session.machine == "gpu" and session.status == "running"
        assert _status(session.port, session.token) == 200
        run_dir = home / "runs" / session.id
        pid = int((run_dir / "tunnel.pid").read_text())
        assert b"_tunnel" in open(f"/proc/{pid}/cmdline", "rb").read()

        request = urllib.request.Request(
            f"http://127.0.0.1:{session.port}/api/contents/notes.txt?token={session.token}", method="PUT",
            data=json.dumps({"type": "file", "format": "text", "content": "from the host\n"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status in (200, 201)

        os.kill(pid, signal.SIGTERM)  # the forwarder gone (a reboot, a kill): --attach starts it again
        wait_for(lambda: not (run_dir / "tunnel.pid").exists(), timeout=15)
        assert _status(session.port, session.token) == 0
        assert wb.attach_session(session.id).url == session.url
        assert _status(session.port, session.token) == 200

        stopped = wb.stop_session(session.id)
        assert "notes.txt" in stopped.brought_back
        assert (root / "notes.txt").read_text() == "from the host\n"
        assert not (run_dir / "tunnel.pid").exists()
        wait_for(lambda: _status(session.port, session.token) == 0, timeout=15)
    finally:
        wb.close()
