"""A silent partition (the host stops answering without refusing: an iptables DROP of the SSH port, as a Wi-Fi
drop looks) in the middle of a remote run. Local reads never wait on the host, the run shows "host unreachable
since T" quickly, commands that need the host fail fast with one line, `runs logs --follow` says the host is
silent and resumes by itself, and once the partition heals every line and point is stored exactly once and the
follower ends with the run (none lingers on a dead socket)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from helpers import COUNTING_SPEC, require, wait_for
from remote_hosts import register, silent
from test_remote_faults import _follower_pids, _show

pytestmark = pytest.mark.docker

LINES = 60
SPEC = COUNTING_SPEC.replace('name = "counting"', 'name = "partition"').replace(
    "n = 30, pause = 0.1", f"n = {LINES}, pause = 0.5")  # 30 s of output: the partition falls in the middle
SILENCE = 25.0  # seconds the host stays silent


def _timed(cli, *args: str):
    began = time.monotonic()
    done = cli(*args)
    return done, time.monotonic() - began


@pytest.mark.parametrize("executor", ["docker", "process"])
def test_a_silent_partition_mid_run_is_a_non_event(cli, make_project, remote_env, tmp_path, home, executor):
    require(subprocess.run(["iptables", "-L", "INPUT", "-n"], capture_output=True).returncode == 0,
            "iptables cannot list INPUT")
    host = remote_env.gpu
    register(cli, "gpu-a", host, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC)
    started = cli("run", str(root), "--machine", "gpu-a", "--executor", executor, "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    wait_for(lambda: _show(cli, run_id)["metrics"].get("x", {}).get("points", 0) >= 8, timeout=60)
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    follow = subprocess.Popen([sys.executable, "-m", "workbench", "runs", "logs", run_id, "--follow"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    figures: dict[str, float] = {}
    try:
        with silent(host):
            cut = time.monotonic()
            # local reads never wait on the silent host
            reads = []
            while time.monotonic() - cut < 6:
                for args in (("runs", "list"), ("runs", "show", run_id), ("queue",)):
                    done, took = _timed(cli, *args)
                    assert done.code == 0, done.err
                    assert "closed database" not in done.err and "internal error" not in done.err, done.err
                    reads.append(took)
            figures["slowest local read"] = max(reads)
            assert max(reads) <= 1.5, reads
            # the run shows since when its host does not answer, soon; never failed or lost
            wait_for(lambda: (_show(cli, run_id).get("status_reason") or "").startswith("host unreachable since"),
                     timeout=15 - (time.monotonic() - cut), interval=0.3)
            figures["to unreachable"] = time.monotonic() - cut
            assert _show(cli, run_id)["status"] == "running"
            # a command that must reach the host fails fast, in one line
            stats, took = _timed(cli, "machines", "stats", "gpu-a")
            figures["machines stats fails in"] = took
            assert stats.code != 0 and took <= 5.0, (took, stats.err)
            assert len(stats.err.strip().splitlines()) == 1 and "gpu-a" in stats.err, stats.err
            assert "Traceback" not in stats.err
            time.sleep(max(0.0, SILENCE - (time.monotonic() - cut)))
            # still running meanwhile, still shown as unreachable (nothing that did not reach the host clears it)
            shown = _show(cli, run_id)
            assert shown["status"] == "running", shown
            assert (shown.get("status_reason") or "").startswith("host unreachable since"), shown
            assert [e["kind"] for e in shown["events"]].count("reachable") == 0, shown["events"]
        healed = time.monotonic()
        wait_for(lambda: _show(cli, run_id)["status"] != "running", timeout=120, interval=0.5)
        figures["heal to end"] = time.monotonic() - healed
        out, err = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.send_signal(signal.SIGINT)
            follow.wait(timeout=10)
    final = _show(cli, run_id)
    assert final["status"] == "succeeded", final
    assert final["metrics"]["x"]["points"] == LINES
    stored = [l for l in cli("runs", "logs", run_id).out.splitlines() if l.startswith("line ")]
    assert stored == [f"line {i}" for i in range(1, LINES + 1)], stored  # each line exactly once
    followed = [l for l in out.splitlines() if l.startswith("line ")]
    assert followed == stored  # `logs --follow` resumed by itself and showed each line once
    assert "gpu-a does not answer" in err and "gpu-a answers again" in err, err
    kinds = [e["kind"] for e in final["events"]]
    assert "unreachable" in kinds and "reachable" in kinds
    assert not final.get("status_reason")
    # the follower ended with the run: none lives on after the partition
    wait_for(lambda: not _follower_pids(run_id), timeout=10, interval=0.5)
    print(f"\n[partition {executor}] " + ", ".join(f"{k} {v:.2f}s" for k, v in figures.items()))


def test_logs_follow_says_the_host_is_silent_and_ctrl_c_ends_it(cli, make_project, remote_env, tmp_path, home):
    host = remote_env.gpu
    register(cli, "gpu-a", host, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC)
    started = cli("run", str(root), "--machine", "gpu-a", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    wait_for(lambda: _show(cli, run_id)["metrics"].get("x", {}).get("points", 0) >= 3, timeout=60)
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    with silent(host):
        follow = subprocess.Popen([sys.executable, "-m", "workbench", "runs", "logs", run_id, "--follow"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        cut = time.monotonic()
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(follow.stderr), daemon=True)
        reader.start()
        wait_for(lambda: any("gpu-a does not answer" in line for line in lines), timeout=10, interval=0.1)
        took = time.monotonic() - cut
        follow.send_signal(signal.SIGINT)
        follow.wait(timeout=10)
        reader.join(timeout=5)
        said = "".join(lines)
    assert follow.returncode == 130, said
    assert "Traceback" not in said
    assert said.strip().splitlines()[-1].startswith("workbench: interrupted"), said
    print(f"\n[logs --follow] said the host is silent after {took:.2f}s")
    cli("runs", "cancel", run_id)


def test_a_killed_follower_is_replaced_by_the_next_command(cli, make_project, remote_env, tmp_path, home):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC.replace("pause = 0.5", "pause = 0.1"))
    started = cli("run", str(root), "--machine", "gpu-a", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    wait_for(lambda: _show(cli, run_id)["metrics"].get("x", {}).get("points", 0) >= 3, timeout=60)
    for pid in _follower_pids(run_id):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _follower_pids(run_id), timeout=10)
    assert cli("runs", "list").code == 0  # the next command: a new follower takes the run on
    followers = wait_for(lambda: _follower_pids(run_id), timeout=10, interval=0.2)
    db = sqlite3.connect(home / "workbench.db")

    def holder() -> int | None:
        row = db.execute("SELECT owner FROM leases WHERE name = ? AND expires_at > ?",
                         (f"ingest:{run_id}", time.time())).fetchone()
        return int(row[0].split(":")[1]) if row else None

    # the new follower holds the run (not a dead CLI's look), and follows it live with nobody else looking:
    # the database is read here directly, so no command's own catch-up can stand in for it
    assert wait_for(lambda: holder() in followers, timeout=10, interval=0.2)
    points = lambda: db.execute("SELECT metric_points, status FROM runs WHERE id = ?", (run_id,)).fetchone()
    before = points()[0]
    wait_for(lambda: points()[1] == "succeeded", timeout=60, interval=0.5)
    assert points()[0] == LINES > before


def test_commands_that_need_a_silent_host_fail_fast_in_one_line(cli, make_project, remote_env, tmp_path, home):
    host = remote_env.gpu
    register(cli, "gpu-a", host, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC.replace(f"n = {LINES}", "n = 600"))
    started = cli("run", str(root), "--machine", "gpu-a", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    wait_for(lambda: _show(cli, run_id)["metrics"].get("x", {}).get("points", 0) >= 2, timeout=60)
    took: dict[str, float] = {}
    for pid in _follower_pids(run_id):  # nobody follows it: each command's own look asks the silent host
        os.kill(pid, signal.SIGKILL)
    try:
        with silent(host):
            for _ in range(3):
                listed, took["runs list"] = _timed(cli, "runs", "list")
                assert listed.code == 0 and took["runs list"] <= 1.5, (took, listed.err)
                assert "closed database" not in listed.err and "internal error" not in listed.err, listed.err
            for args in (("run", str(root), "--machine", "gpu-a"), ("runs", "cancel", run_id),
                         ("doctor", "gpu-a"), ("machines", "stats", "gpu-a")):
                done, took[args[0] + " " + args[1]] = _timed(cli, *args)
                assert done.code != 0, (args, done.out, done.err)
                said = done.err + done.out
                assert "Traceback" not in said and "internal error" not in said, (args, said)
                if args[0] == "doctor":  # a report of each check, on stdout: the host's says it does not answer
                    assert "gpu-a" in done.out and "does not answer" in done.out, done.out
                else:
                    lines = done.err.strip().splitlines()
                    assert len(lines) == 1 and "gpu-a" in lines[0], (args, said)
            # nothing was recorded or lost meanwhile: the run is still there, running, and goes on; the cancel
            # that did not reach it is not recorded as asked for
            shown = _show(cli, run_id)
            assert shown["status"] == "running", shown
            asked = sqlite3.connect(home / "workbench.db").execute(
                "SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            assert not asked
            assert len(cli("runs", "list", "--json").json()) == 1
            # --force removes the record whatever the host says, and says what it left there
            removed, took["runs rm --force"] = _timed(cli, "runs", "rm", "--force", run_id)
            assert removed.code == 0 and "Traceback" not in removed.err, removed.err
            assert "gpu-a does not answer" in removed.err and f"removed run {run_id}" in removed.err
            assert max(took.values()) <= 5.0, took
    finally:
        cli("runs", "cancel", run_id)
        cli("gc")  # the removed run's container, left on the host
    print("\n[silent host] " + ", ".join(f"{k} {v:.2f}s" for k, v in took.items()))
