"""Exactly-once ingestion, bad metric lines, huge logs, runs outliving the CLI, reconciliation."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import wait_for


@pytest.fixture(autouse=True)
def short_leases(monkeypatch):
    """A dead follower's lease lapses in 3 s here (15 s by default): takeovers without long sleeps."""
    monkeypatch.setenv("WORKBENCH_LEASE_TTL", "3")

METRICS_SPEC = """\
[experiments.m]
image = "busybox:latest"
command = ["sh", "emit.sh", "{n}"]
params = { n = 4000 }
"""
# One point per line, numbered, a little slower than instant so a kill lands mid-run.
EMIT = """\
i=0
while [ $i -lt $1 ]; do
  echo "{\\"step\\": $i, \\"loss\\": $i.5}" >> $WORKBENCH_METRICS
  echo "log line $i"
  i=$((i+1))
  if [ $((i % 500)) -eq 0 ]; then sleep 0.3; fi
done
"""


def _db(home):
    return sqlite3.connect(home / "workbench.db")


def _run_row(home, run_id):
    conn = _db(home)
    conn.row_factory = sqlite3.Row
    return conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()


@pytest.mark.usefixtures("docker_client")
def test_kill_9_of_the_ingesting_process_loses_and_doubles_nothing(cli, make_project, home):
    root = make_project(METRICS_SPEC, {"emit.sh": EMIT})
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    waiter = subprocess.Popen([sys.executable, "-m", "workbench", "run", str(root), "--wait"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill the ingesting CLI once some (not all) points are in.
    def some_points():
        try:
            row = _db(home).execute("SELECT max(metric_points) FROM runs").fetchone()
        except sqlite3.OperationalError:
            return False
        return row[0] and 0 < row[0] < 4000
    wait_for(some_points, timeout=60, interval=0.01)
    waiter.send_signal(signal.SIGKILL)
    waiter.wait()
    run_id = _db(home).execute("SELECT id FROM runs").fetchone()[0]
    assert _run_row(home, run_id)["status"] == "running"
    # The next start takes over (the dead owner's lease expires) and ingests the rest.
    final = wait_for(lambda: (r := cli("runs", "show", run_id, "--json").json())["status"] == "succeeded" and r,
                     timeout=60, interval=0.5)
    conn = _db(home)
    seq = conn.execute("SELECT seq FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    steps = [s for (s,) in conn.execute("SELECT step FROM metrics WHERE run_seq = ? ORDER BY step", (seq,))]
    assert steps == list(range(4000))  # every point once
    assert final["metrics"]["loss"]["points"] == 4000
    lines = cli("runs", "logs", run_id).out.splitlines()
    assert lines == [f"log line {i}" for i in range(4000)]  # every log line once, in order


@pytest.mark.usefixtures("docker_client")
def test_bad_metric_lines_are_skipped_and_counted(cli, make_project):
    script = (
        "echo '{\"step\": 1, \"loss\": 0.5, \"acc\": NaN, \"note\": \"text\"}' >> $WORKBENCH_METRICS; "
        "echo 'not json at all' >> $WORKBENCH_METRICS; "
        "echo '[1, 2]' >> $WORKBENCH_METRICS; "
        "echo '{\"loss\": Infinity, \"flag\": true}' >> $WORKBENCH_METRICS; "
        "printf '{\"loss\": -Infinity}' >> $WORKBENCH_METRICS"  # last line without newline
    )
    root = make_project('[experiments.m]\ncommand = ' + json.dumps(["sh", "-c", script]) + '\nimage = "busybox:latest"\n')
    for executor in ("docker", "process"):
        result = cli("run", str(root), "--executor", executor, "--wait", "--json")
        assert result.code == 0, result.err
        run = cli("runs", "show", result.json()["id"], "--json").json()
        assert run["bad_metric_lines"] == 2 and run["bad_metric_values"] == 2
        assert run["metrics"]["loss"]["points"] == 3
        assert run["metrics"]["acc"]["points"] == 1 and run["metrics"]["acc"]["last"] == "NaN"  # kept
        assert run["metrics"]["loss"]["min"] == "-Infinity" and run["metrics"]["loss"]["max"] == "Infinity"
        assert run["metric_points"] == 4  # loss x3 + acc (NaN kept)


@pytest.mark.usefixtures("docker_client")
def test_hundred_megabytes_of_logs(cli, make_project, home):
    # 100 MB: 1,000,000 lines of 100 bytes, as fast as the container can print them.
    root = make_project('[experiments.flood]\nimage = "busybox:latest"\n'
                        'command = ["sh", "-c", "yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456 | head -n 1000000; echo done"]\n')
    started = time.monotonic()
    result = cli("run", str(root), "--wait", "--json", timeout=600)
    elapsed = time.monotonic() - started
    assert result.code == 0, result.err
    run_id = result.json()["id"]
    logs = home / "runs" / run_id / "logs.txt"
    with open(logs, "rb") as fh:
        count = sum(1 for _ in fh)
    assert count == 1_000_001
    assert logs.stat().st_size > 100_000_000
    print(f"100 MB of logs ingested in {elapsed:.1f}s")


def test_runs_outlive_the_cli_and_the_background_follower(cli, make_project, home):
    root = make_project('[experiments.slow]\ncommand = ["sh", "-c", "sleep 1; echo finished; echo \'{\\"v\\": 1}\' >> $WORKBENCH_METRICS"]\n'
                        'image = "busybox:latest"\n')
    started = cli("run", str(root), "--executor", "process", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    # Kill every background follower: the run must still finish and be reconciled by the next command.
    subprocess.run(["pkill", "-9", "-f", f"workbench _follow {run_id}"])
    wait_for(lambda: (home / "runs" / run_id / "exit.json").exists(), timeout=30)
    # the next command takes over once the killed follower's lease expires
    run = wait_for(lambda: (r := cli("runs", "show", run_id, "--json").json())["status"] == "succeeded" and r,
                   timeout=30, interval=0.5)
    assert run["metrics"]["v"]["points"] == 1
    assert "finished" in cli("runs", "logs", run_id).out


@pytest.mark.usefixtures("docker_client")
def test_vanished_container_becomes_lost(cli, make_project, docker_client):
    root = make_project('[experiments.long]\nimage = "busybox:latest"\ncommand = ["sleep", "300"]\n')
    run_id = cli("run", str(root), "--json").json()["id"]
    subprocess.run(["pkill", "-9", "-f", f"workbench _follow {run_id}"])
    container = docker_client.containers.list(filters={"label": f"workbench.run-id={run_id}"})[0]
    container.remove(force=True)
    run = wait_for(lambda: (r := cli("runs", "show", run_id, "--json").json())["status"] == "lost" and r,
                   timeout=30, interval=0.5)
    assert "no longer exists" in run["status_reason"]


@pytest.mark.usefixtures("docker_client")
def test_two_workbench_processes_on_one_data_dir(cli, make_project, home):
    """Two launches and a lister at once on one database: all recorded, nobody blocked or corrupted."""
    root = make_project('[experiments.x]\nimage = "busybox:latest"\ncommand = ["sh", "-c", "echo {n}; echo \'{\\"v\\": {n}}\' >> $WORKBENCH_METRICS"]\n'
                        'params = { n = 0 }\n')
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-m", "workbench", "run", str(root), "-p", f"n={i}", "--wait", "--json"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    listers = [subprocess.Popen([sys.executable, "-m", "workbench", "runs", "list", "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=180) for p in procs + listers]
    assert all(p.returncode == 0 for p in procs + listers), [r[1] for r in results]
    runs = cli("runs", "list", "--json").json()
    assert sorted(r["summary"]["v"] for r in runs) == [0.0, 1.0, 2.0, 3.0]
    assert all(r["status"] == "succeeded" and r["metric_points"] == 1 for r in runs)
    integrity = sqlite3.connect(home / "workbench.db").execute("PRAGMA integrity_check").fetchone()[0]
    assert integrity == "ok"


def test_logs_follow_streams_a_live_run(cli, make_project, home):
    root = make_project('[experiments.tick]\nimage = "busybox:latest"\n'
                        'command = ["sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 0.3; done"]\n')
    run_id = cli("run", str(root), "--executor", "process", "--json").json()["id"]
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    follower = subprocess.Popen([sys.executable, "-m", "workbench", "runs", "logs", run_id, "--follow"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = follower.stdout.readline()
    assert first.startswith("tick ")  # arrives while the run is still going
    assert cli("runs", "show", run_id, "--json").json()["status"] == "running"
    # read through the same file object: communicate() reads the pipe itself and would miss what readline()
    # already buffered (a second line that arrived with the first)
    rest, err = follower.stdout.read(), follower.stderr.read()
    assert follower.wait(timeout=60) == 0, err
    assert (first + rest).splitlines() == [f"tick {i}" for i in range(1, 6)]
