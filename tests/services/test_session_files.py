"""A session's files brought back by `runs rm` (real JupyterLab sessions on the local Docker engine, edited through
Jupyter's REST API), and the bring-back lease kept while the copying takes long (a real store)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from jupyter_api import put_text

from workbench.errors import NotFound, WorkbenchError
from workbench.services import session_files
from workbench.store.leases import new_owner


@pytest.fixture
def said() -> list[str]:
    return []


@pytest.fixture
def wb(home, docker_client, said):
    from workbench.services import Workbench

    bench = Workbench(progress=said.append)
    yield bench
    for session in bench.sessions():
        if session.status in ("queued", "running"):
            bench.stop_session(session.id)
    bench.close()


def test_runs_rm_force_on_a_running_session_brings_its_files_back_first(wb, project, home, said):
    session = wb.open_session(str(project))
    put_text(session.port, session.token, "notes.py", "print('lab')\n")
    put_text(session.port, session.token, "metrics.jsonl", '{"step": 1}\n')  # a project file like any other here

    assert wb.remove(session.id, force=True) == session.id

    assert (project / "notes.py").read_text() == "print('lab')\n"
    assert (project / "metrics.jsonl").read_text() == '{"step": 1}\n'
    with pytest.raises(NotFound):
        wb.show(session.id)
    time.sleep(2)  # the follower, which finalised the run as it was removed, has ended without an error
    follower_err = home / "runs" / session.id / "follower.err"
    assert not follower_err.exists() or "Traceback" not in follower_err.read_text()
    assert not [line for line in said if "without its files" in line]


def test_runs_rm_refuses_a_session_whose_files_cannot_come_back_and_force_says_what_is_lost(wb, project, said):
    session = wb.open_session(str(project))
    put_text(session.port, session.token, "notes.py", "print('lab')\n")
    moved = project.with_name("moved")
    project.rename(moved)  # the project folder is gone: nothing can be brought back into it
    stopped = wb.stop_session(session.id)
    assert "not brought back yet" in stopped.brought_back
    work = Path(wb.show(session.id).handle["run_dir"]) / "work"

    with pytest.raises(WorkbenchError, match=f"session {session.id}'s files are not brought back: cannot open the "
                                             f"project folder .*; its working copy is local:{work} "):
        wb.remove(session.id)
    assert (work / "notes.py").read_text() == "print('lab')\n"  # kept while its files are not back

    wb.remove(session.id, force=True)
    assert [line for line in said if f"session {session.id} removed without its files brought back" in line
            and f"local:{work}" in line and "is lost" in line]
    with pytest.raises(NotFound):
        wb.show(session.id)


def test_the_bring_back_lease_is_renewed_while_files_are_copied(home, monkeypatch):
    from workbench.services import Workbench

    monkeypatch.setattr(session_files, "LEASE_TTL", 1.0)
    monkeypatch.setattr(session_files, "LEASE_RENEW", 0.2)
    bench = Workbench()
    store = bench._services.store
    try:
        with session_files.bringing_back(bench._services, "r1", wait=0) as held:
            assert held
            time.sleep(2.5)  # longer than the lease lasts unrenewed
            assert not store.acquire_lease(session_files.bring_back_lease("r1"), new_owner(), 1.0)
        assert store.lease_holder(session_files.bring_back_lease("r1")) is None  # released after
    finally:
        bench.close()


@pytest.mark.docker
def test_over_ssh_files_arrive_with_the_users_modes_and_unreadable_ones_are_said_not_deleted(cli, remote_env, docker_client,
                                                                                 home, tmp_path):
    import docker

    from remote_hosts import copy_image, register
    from workbench.services import Workbench
    from workbench.services.images import runner_image, runner_tag

    register(cli, "gpu", remote_env.gpu, remote_env.user_key)
    wb = Workbench()
    try:
        base = docker_client.images.get("python:3.11-slim").id  # the lab image, built here, sent there
        runner_image(wb._services, base, packages=("jupyterlab",), probe="import jupyterlab", purpose="lab")
        copy_image(runner_tag("lab", base), remote_env.docker_host)
        root = tmp_path / "lab-project"
        root.mkdir()
        (root / "workbench.toml").write_text(f'[experiments.x]\nimage = "{runner_tag("lab", base)}"\n'
                                             f'command = ["true"]\n')
        (root / "notes.txt").write_text("start\n")
        (root / "notes.txt").chmod(0o640)
        (root / "data").mkdir()
        (root / "data" / "x.csv").write_text("1\n")

        session = wb.open_session(str(root), machine="gpu")
        for name, text in [("notes.txt", "edited\n"), ("new.py", "n\n"), ("metrics.jsonl", '{"step": 1}\n')]:
            put_text(session.port, session.token, name, text)
        host_engine = docker.DockerClient(base_url=remote_env.docker_host)
        try:
            container, = host_engine.containers.list(filters={"label": f"workbench.run-id={session.id}"})
            # a name that is not UTF-8: the folder's SFTP listing cannot be read (root reads any mode)
            made = container.exec_run(["python3", "-c", "open(b'/wb/src/data/\\xff', 'w').close()"])
            assert made.exit_code == 0, made.output
        finally:
            host_engine.close()

        stopped = wb.stop_session(session.id)

        assert "could not be read in the session's copy: data" in stopped.brought_back
        assert "deleted in the session" not in stopped.brought_back
        assert (root / "metrics.jsonl").read_text() == '{"step": 1}\n'
        assert (root / "notes.txt").read_text() == "edited\n"
        modes = {name: (root / name).stat().st_mode & 0o777 for name in ("notes.txt", "new.py", "metrics.jsonl")}
        assert modes == {"notes.txt": 0o640, "new.py": 0o666 & ~_umask(), "metrics.jsonl": 0o666 & ~_umask()}
    finally:
        wb.close()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
