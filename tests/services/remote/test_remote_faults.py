"""Disconnects lose nothing: a remote run lives on its host. The follower killed with -9, or the host's sshd
and every session on it killed mid-run, stop nothing there; the run shows "host unreachable since T" meanwhile
(never failed or lost), and afterwards every point and line is in the history exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from helpers import COUNTING_SPEC, wait_for
from remote_hosts import register

pytestmark = pytest.mark.docker

POINTS = 120
SPEC = COUNTING_SPEC.replace('name = "counting"', 'name = "remote-faults"').replace(
    "n = 30, pause = 0.1", "n = 120, pause = 0.05")


def _children(pid: int) -> list[int]:
    """Every descendant of a process (sshd's sessions are children of its listener)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def _kill_host(host) -> None:
    """The host goes away: its sshd and every session on it killed with -9 (so our connection drops). The
    listener is stopped first: a connection it accepted between the look for its sessions and its own kill
    would outlive it (and keep the run reachable)."""
    pid = host.process.pid
    os.kill(pid, signal.SIGSTOP)
    for victim in _children(pid) + [pid]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    host.process.wait(timeout=10)


def _show(cli, run_id: str) -> dict:
    shown = cli("runs", "show", run_id, "--json")
    assert shown.code == 0, shown.err
    return shown.json()


def _diagnosis(cli, run_id: str) -> str:
    """What a failed wait on the run saw: its record and events, its followers, what they wrote on stderr."""
    shown = _show(cli, run_id)
    home = Path(os.environ["WORKBENCH_HOME"])
    errors = [err.read_text()[-2000:] for err in home.glob(f"runs/{run_id}/follower.err")]
    return (f"status {shown['status']!r} ({shown.get('status_reason')!r}); events "
            f"{[(e['kind'], e['message'][:80]) for e in shown['events']]}; followers {_follower_pids(run_id)}; "
            f"follower.err {errors}; sshd processes {_sshd_processes()}")


def _sshd_processes() -> list[str]:
    import subprocess
    listing = subprocess.run(["ps", "-eo", "pid,ppid,lstart,args"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if "sshd" in line]


def _follower_pids(run_id: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"_follow" in argv and run_id.encode() in argv:
                pids.append(int(entry.name))
    return pids


def _assert_exactly_once(cli, run_id: str) -> None:
    final = _show(cli, run_id)
    assert final["status"] == "succeeded", final
    assert final["metrics"]["x"]["points"] == POINTS
    lines = [l for l in cli("runs", "logs", run_id).out.splitlines() if l.startswith("line ")]
    assert lines == [f"line {i}" for i in range(1, POINTS + 1)]


def test_kill_9_of_the_follower_mid_run_loses_nothing(cli, make_project, remote_env, tmp_path):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC)
    started = cli("run", str(root), "--machine", "gpu-a", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    wait_for(lambda: _show(cli, run_id)["metrics"].get("x", {}).get("points", 0) >= 10, timeout=60)
    followers = _follower_pids(run_id)
    assert followers, "no background follower"
    for pid in followers:
        os.kill(pid, signal.SIGKILL)
    # the run goes on on the host; the next look (any CLI command reconciles) takes over and catches up
    wait_for(lambda: cli("runs", "list", "--json").json()[0]["status"] == "succeeded", timeout=90, interval=0.5)
    _assert_exactly_once(cli, run_id)


def test_the_host_going_away_mid_run_leaves_it_running_then_catches_up(cli, make_project, remote_env, tmp_path):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC.replace("pause = 0.05", "pause = 0.25"))  # 30 s: the host goes away mid-run
    started = cli("run", str(root), "--machine", "gpu-a", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    begun = time.monotonic()
    wait_for(lambda: _show(cli, run_id)["metrics"].get("x", {}).get("points", 0) >= 10, timeout=60)
    _kill_host(remote_env.gpu)
    took = time.monotonic() - begun
    before = _show(cli, run_id)
    assert before["status"] == "running", f"{took:.1f}s to 10 points; " + _diagnosis(cli, run_id)
    try:
        # shown as running, with since when the host does not answer; never failed or lost
        try:
            wait_for(lambda: (_show(cli, run_id).get("status_reason") or "").startswith("host unreachable since"),
                     timeout=60, interval=0.5)
        except AssertionError:
            pytest.fail(_diagnosis(cli, run_id))
        listed = cli("runs", "list", "--json")
        assert listed.code == 0, listed.err
        assert listed.json()[0]["status"] == "running"
        assert listed.json()[0]["status_reason"].startswith("host unreachable since")
        table = cli("runs", "list").out.splitlines()
        assert "MACHINE" in table[0] and "unreachable" in table[1] and "gpu-a" in table[1], table
        # the container keeps running on the host's engine meanwhile
        running = remote_env.docker.containers.list(filters={"label": f"workbench.run-id={run_id}"})
        assert running and running[0].status == "running"
    finally:
        remote_env.gpu.start()
    wait_for(lambda: cli("runs", "list", "--json").json()[0]["status"] == "succeeded", timeout=120, interval=0.5)
    _assert_exactly_once(cli, run_id)
    final = _show(cli, run_id)
    assert not final.get("status_reason")
    kinds = [e["kind"] for e in final["events"]]
    assert "unreachable" in kinds and "reachable" in kinds


def test_a_host_unreachable_at_launch_is_one_clear_line(cli, make_project, remote_env, tmp_path):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC)
    remote_env.gpu.stop()
    try:
        failed = cli("run", str(root), "--machine", "gpu-a")
    finally:
        remote_env.gpu.start()
    assert failed.code == 1
    assert "Traceback" not in failed.err
    assert "gpu-a" in failed.err.strip().splitlines()[-1]
