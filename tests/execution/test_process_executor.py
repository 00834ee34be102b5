"""The process executor: detached setsid runs with pid, start-time and exit-code files."""

from __future__ import annotations

import json

from helpers import SAMPLES, wait_for


def test_sample_mnist_with_process_executor(cli, home):
    """The real classifier on the shipped digits, on this machine's Python (numpy is a test dependency here)."""
    result = cli("run", str(SAMPLES / "mnist-numpy"), "--executor", "process", "-p", "epochs=6", "--wait", "--json")
    assert result.code == 0, result.err
    run = cli("runs", "show", result.json()["id"], "--json").json()
    assert run["metrics"]["acc"]["points"] == 6 and run["metrics"]["acc"]["last"] > 0.85
    assert [a["path"] for a in run["artifacts"]] == ["model.npz"]
    assert run["executor"] == "process"
    pid = json.loads((home / "runs" / run["id"] / "pid").read_text())
    assert pid["pid"] > 0 and pid["started_at"] > 0
    assert json.loads((home / "runs" / run["id"] / "exit.json").read_text())["exit_code"] == 0


def test_process_run_cancel_and_signal(cli, make_project, home):
    root = make_project('[experiments.s]\nimage = "busybox:latest"\ncommand = ["sleep", "300"]\n'
                        '[experiments.k]\nimage = "busybox:latest"\ncommand = ["sh", "-c", "kill -TERM $$"]\n')
    run_id = cli("run", str(root), "-e", "s", "--executor", "process", "--json").json()["id"]
    wait_for(lambda: (home / "runs" / run_id / "pid").exists())
    cancelled = cli("runs", "cancel", run_id, "--json").json()
    assert cancelled["status"] == "cancelled"
    killed = cli("run", str(root), "-e", "k", "--executor", "process", "--wait", "--json").json()
    assert killed["status"] == "failed" and "signal 15 (SIGTERM)" in killed["status_reason"]


def test_missing_program_is_a_failed_run_with_reason(cli, make_project):
    root = make_project('[experiments.x]\nimage = "busybox:latest"\ncommand = ["no-such-program-here"]\n')
    result = cli("run", str(root), "--executor", "process", "--wait", "--json")
    assert result.code == 1
    run_id = result.json()["id"]
    assert result.json()["exit_code"] == 127
    assert "cannot start 'no-such-program-here'" in cli("runs", "logs", run_id).out
