"""Issue 8, items 7, 8 and 11: a launcher killed at the worst moment, gc racing a launch, and containers
left behind by a create that timed out. Real Docker engine, real processes, real SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from helpers import COUNTING_SPEC, wait_for
from workbench.services import Workbench

pytestmark = pytest.mark.usefixtures("docker_client")

# Launches, then dies by SIGKILL at the moment between "container started" and "recorded as running".
KILLED_LAUNCHER = r"""
import os, sys
from workbench.services import Workbench
wb = Workbench()
wb._services.store.mark_running = lambda *a, **k: os.kill(os.getpid(), 9)
wb.launch(sys.argv[1], overrides=sys.argv[2:])
"""


def _launch_and_die(home, root, *overrides: str) -> str:
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", KILLED_LAUNCHER, str(root), *overrides], env=env, timeout=120)
    assert done.returncode == -9
    wb = Workbench()
    try:
        (run,) = wb._services.store.list_runs()
    finally:
        wb.close()
    assert run["status"] == "queued"
    return run["id"]


def _containers(docker_client, run_id: str):
    return docker_client.containers.list(all=True, filters={"label": f"workbench.run-id={run_id}"})


def test_a_run_whose_launcher_died_is_adopted_in_seconds_and_ingested_fully(cli, make_project, home, docker_client):
    root = make_project(COUNTING_SPEC)
    run_id = _launch_and_die(home, root, "n=30", "pause=0.1")
    assert _containers(docker_client, run_id), "the container was started before the launcher died"
    died = time.monotonic()
    wait_for(lambda: cli("runs", "show", run_id, "--json").json()["status"] != "queued", timeout=30, interval=0.5)
    assert time.monotonic() - died < 20  # the launch lease lapses in seconds (it used to be an hour)
    logs = cli("runs", "logs", run_id, "--follow")
    assert logs.code == 0, logs.err
    # the dead launcher's lease is released at once: ingestion does not wait for it to lapse (20 s)
    assert time.monotonic() - died < 15
    shown = cli("runs", "show", run_id, "--json").json()
    assert shown["status"] == "succeeded", shown["status_reason"]
    assert shown["metric_points"] == 30 and shown["metrics"]["x"]["max"] == 30.0
    stored = cli("runs", "logs", run_id).out.splitlines()
    assert stored == [f"line {i}" for i in range(1, 31)]
    assert any(e["kind"] == "adopted" for e in shown["events"])


def test_cancel_stops_the_container_of_a_launcher_that_died(cli, make_project, home, docker_client):
    root = make_project(COUNTING_SPEC)
    run_id = _launch_and_die(home, root, "n=600", "pause=0.1")
    cancelled = cli("runs", "cancel", run_id, "--json")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json()["status"] == "cancelled"
    wait_for(lambda: all(c.status != "running" for c in _containers(docker_client, run_id)), timeout=30)
    again = cli("runs", "cancel", run_id)
    assert again.code == 0 and "already cancelled" in again.err  # a second cancel is not an error


def test_gc_waits_for_a_launch_between_its_snapshot_and_its_record(make_project, home):
    root = make_project(COUNTING_SPEC, files={"fresh.txt": str(time.time_ns())})
    launcher, collector = Workbench(), Workbench()
    reached, go = threading.Event(), threading.Event()
    real_update = launcher._services.store.update_run

    def slow_record(run_id: str, **fields):
        if "snapshot" in fields:  # the snapshot is on disk and referenced by no run yet
            reached.set()
            go.wait(30)
        return real_update(run_id, **fields)

    launcher._services.store.update_run = slow_record
    result: dict = {}
    launch = threading.Thread(target=lambda: result.update(run=launcher.launch(str(root), overrides=["n=2"])))
    launch.start()
    assert reached.wait(60)
    gc = threading.Thread(target=lambda: result.update(gc=collector.gc()))
    gc.start()
    gc.join(timeout=1.5)
    assert gc.is_alive(), "gc must wait for the launch that holds a fresh snapshot"
    go.set()
    launch.join(60)
    gc.join(60)
    assert result["gc"]["snapshots_removed"] == 0
    assert (home / "snapshots" / result["run"].snapshot).is_dir()
    final = launcher.wait(result["run"].id)
    assert final.status == "succeeded", final.status_reason
    launcher.close()
    collector.close()


def test_a_create_that_times_out_leaves_no_container_and_gc_removes_our_orphans(cli, make_project, home,
                                                                               docker_client):
    import requests

    root = make_project(COUNTING_SPEC)
    wb = Workbench()
    api = wb._services.docker_client().api
    real_create = api.create_container

    def create_then_time_out(**kwargs):
        real_create(**kwargs)  # the engine creates it; the client never hears back
        raise requests.exceptions.ReadTimeout("UnixHTTPConnectionPool(host='localhost'): Read timed out.")

    api.create_container = create_then_time_out
    with pytest.raises(Exception) as err:
        wb.launch(str(root))
    assert "did not answer while creating the container" in str(err.value)
    (run,) = wb._services.store.list_runs()
    assert run["status"] == "failed"
    assert not _containers(docker_client, run["id"])

    instance = wb._services.store.instance
    wb.close()
    ours = docker_client.containers.create("busybox:latest", ["true"], labels={
        "workbench.instance": instance, "workbench.kind": "run", "workbench.run-id": "deadbeef"})
    theirs = docker_client.containers.create("busybox:latest", ["true"], labels={
        "workbench.instance": "someone-else", "workbench.kind": "run", "workbench.run-id": "deadbeef"})
    try:
        gc = cli("gc", "--json")
        assert gc.code == 0, gc.err
        assert gc.json()["containers_removed"] == 1
        names = {c.id for c in docker_client.containers.list(all=True)}
        assert ours.id not in names and theirs.id in names
    finally:
        theirs.remove(force=True)


KILLED_BEFORE_START = r"""
import os, sys
from workbench.services import Workbench
wb = Workbench()
wb._services.docker_client().api.start = lambda *a, **k: os.kill(os.getpid(), 9)  # created, never started
wb.launch(sys.argv[1], overrides=sys.argv[2:])
"""


def test_a_container_created_but_never_started_is_started_on_adoption(cli, make_project, home, docker_client):
    root = make_project(COUNTING_SPEC)
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", KILLED_BEFORE_START, str(root), "n=5", "pause=0.1"], env=env,
                          timeout=120)
    assert done.returncode == -9
    wb = Workbench()
    (run,) = wb._services.store.list_runs()  # read without reconciling
    wb.close()
    assert [c.status for c in _containers(docker_client, run["id"])] == ["created"]
    cli("runs", "show", run["id"])  # reconcile: adopted and started
    assert cli("runs", "logs", run["id"], "--follow").code == 0
    shown = cli("runs", "show", run["id"], "--json").json()
    assert shown["status"] == "succeeded" and shown["metric_points"] == 5


def test_cancel_during_a_slow_launch_is_immediate_and_the_launcher_stops_what_it_starts(make_project, home,
                                                                                      docker_client):
    root = make_project(COUNTING_SPEC)
    launcher, other = Workbench(), Workbench()
    building, go = threading.Event(), threading.Event()
    real_image_for = launcher._services._image_for

    def slow_build(*args, **kwargs):
        building.set()
        go.wait(30)
        return real_image_for(*args, **kwargs)

    launcher._services._image_for = slow_build
    result: dict = {}
    launch = threading.Thread(target=lambda: result.update(run=launcher.launch(str(root), overrides=["n=300"])))
    launch.start()
    assert building.wait(60)
    (run,) = other._services.store.list_runs()
    started = time.monotonic()
    cancelled = other.cancel(run["id"])
    assert cancelled.status == "cancelled" and time.monotonic() - started < 2
    go.set()
    launch.join(60)
    assert result["run"].status == "cancelled"
    wait_for(lambda: not [c for c in _containers(docker_client, run["id"]) if c.status == "running"], timeout=30)
    launcher.close()
    other.close()
