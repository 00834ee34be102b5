"""Issue 9, items 2, 3 and 4 below the app: Python output is live and kept on cancel; one run that cannot
be reconciled never stops the others; importing docker-py never hides paramiko from another thread."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import wait_for
from workbench.services import Workbench

PYTHON_SPEC = r"""
[project]
name = "py"
[experiments.talk]
image = "python:3.11-slim"
command = ["python", "-c", "import time\nprint('hello from python')\ntime.sleep(120)"]
[experiments.buffered]
image = "python:3.11-slim"
command = ["python", "-c", "import os, time\nprint('unbuffered=' + os.environ.get('PYTHONUNBUFFERED', ''))"]
env = { PYTHONUNBUFFERED = "" }
"""


@pytest.mark.usefixtures("docker_client")
def test_python_output_is_live_and_kept_on_cancel(cli, make_project):
    root = make_project(PYTHON_SPEC)
    run_id = cli("run", str(root), "-e", "talk", "--json").json()["id"]
    # live, while the program still runs (print() to a pipe is block-buffered without PYTHONUNBUFFERED)
    wait_for(lambda: "hello from python" in cli("runs", "logs", run_id).out, timeout=60, interval=0.5)
    assert cli("runs", "show", run_id, "--json").json()["status"] == "running"
    cancelled = cli("runs", "cancel", run_id, "--json")
    assert cancelled.json()["status"] == "cancelled"
    assert cli("runs", "logs", run_id).out.splitlines() == ["hello from python"]
    # the spec's env may still say otherwise
    own = cli("run", str(root), "-e", "buffered", "--wait", "--json")
    assert cli("runs", "logs", own.json()["id"]).out.strip() == "unbuffered="


@pytest.mark.usefixtures("docker_client")
def test_one_run_that_cannot_be_reconciled_never_stops_the_others(cli, make_project, home):
    root = make_project('[experiments.x]\nimage = "busybox:latest"\ncommand = ["sh", "-c", "sleep 2; echo done"]\n')
    good = cli("run", str(root), "--json").json()["id"]
    wb = Workbench()
    broken = dict(wb._services.store.get_run(good), id="feedface")
    for key in ("seq", "status_reason", "finished_at", "exit_code", "verdict", "handle"):
        broken.pop(key, None)
    broken.update(status="queued", executor="slurm-from-the-future", created_at=broken["created_at"] - 1)
    wb._services.store.insert_run(broken)
    wb._services.store.mark_running("feedface", {"job": 1}, 0)
    wb.close()
    for _ in range(2):
        listed = cli("runs", "list")
        assert listed.code == 0, listed.err
        assert "feedface" in listed.out and good in listed.out
    wait_for(lambda: cli("runs", "show", good, "--json").json()["status"] == "succeeded", timeout=60)
    events = cli("runs", "show", "feedface", "--json").json()["events"]
    warnings = [e for e in events if e["kind"] == "warning" and "could not be brought up to date" in e["message"]]
    assert len(warnings) == 1 and "slurm-from-the-future" in warnings[0]["message"]  # said once, not per look


def test_importing_docker_never_hides_paramiko_from_another_thread():
    script = r"""
import importlib.abc, sys, threading
started = threading.Event()
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "docker.api":
            started.set()
            threading.Event().wait(0.5)  # docker's import is under way: let the other thread try paramiko now
        return None
sys.meta_path.insert(0, Watch())
errors = []
def other():
    started.wait(10)
    try:
        import paramiko
    except ImportError as exc:
        errors.append(repr(exc))
t = threading.Thread(target=other); t.start()
from workbench.execution.engine import import_docker
import_docker("unix:///var/run/docker.sock")
t.join()
print("errors:", errors)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "errors: []"
