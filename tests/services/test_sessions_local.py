"""JupyterLab sessions on the local Docker engine, end to end: the sample notebook project (its Dockerfile, then
the lab layer), reached with its token, edited through Jupyter's REST API while a file is also edited locally,
stopped, and its files brought back."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import SAMPLES

from workbench.cli.runs_table import runs_table
from workbench.errors import WorkbenchError
from workbench.machines.gpus import GpuInventory
from workbench.machines.nvidia_smi import GpuReading


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def _put(port: int, token: str, path: str, model: dict) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents/{path}?token={token}", method="PUT",
                                     data=json.dumps(model).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status in (200, 201)


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "mnist-notebook"
    shutil.copytree(SAMPLES / "mnist-notebook", root)
    return root


@pytest.fixture
def wb(home, docker_client):
    from workbench.services import Workbench

    bench = Workbench()
    yield bench
    for session in bench.sessions():
        if session.status in ("queued", "running"):
            bench.stop_session(session.id)
    bench.close()


def test_a_session_opens_is_edited_on_both_sides_and_brings_its_files_back(wb, project, home, docker_client):
    session = wb.open_session(str(project))
    assert session.status == "running" and session.machine == "local"
    assert session.url == f"http://127.0.0.1:{session.port}/lab?token={session.token}"
    assert len(session.token) == 48
    # ready means answering with the token; without it, refused
    assert _get(f"http://127.0.0.1:{session.port}/api/status?token={session.token}") == 200
    assert _get(f"http://127.0.0.1:{session.port}/api/contents") == 403
    # the token is in no byte of the database (WAL included)
    for db in home.glob("*.db*"):
        assert session.token.encode() not in db.read_bytes(), db
    row = next(r for r in wb.runs() if r.id == session.id)
    assert row.kind == "session"
    assert any(line.startswith(session.id) and "session: mnist-notebook/train" in line
               for line in runs_table([row], 120))  # `runs list` says it
    assert [(s.id, s.status, s.url) for s in wb.sessions()] == [(session.id, "running", session.url)]
    assert wb.attach_session(session.id).url == session.url

    notebook = {"cells": [{"cell_type": "code", "source": "print(2)", "metadata": {}, "outputs": [],
                           "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    _put(session.port, session.token, "explore.ipynb", {"type": "notebook", "format": "json", "content": notebook})
    _put(session.port, session.token, "serve.py", {"type": "file", "format": "text", "content": "print('lab')\n"})
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
