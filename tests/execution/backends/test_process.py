"""The process executor: detached setsid runs with pid, start-time and exit-code files; the experiment's
output and process group outlive its supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from helpers import SAMPLES, wait_for

from workbench.execution.backends.process import SUPERVISOR_KILLED, ProcessExecutor
from workbench.execution.base import BackendSettings, Handle, Launch, Machine, RunState
from workbench.execution.hosts import LocalHost
from workbench.logformat import split_line, stamp_to_ns

# 60 numbered lines over ~3 s, each flushed, a metric per line and a warning on stderr every tenth.
COUNTER = """\
import json, os, sys, time
for i in range(60):
    print(f"line {i}", flush=True)
    if i % 10 == 0:
        print(f"warn {i}", file=sys.stderr, flush=True)
    with open(os.environ["WORKBENCH_METRICS"], "a") as fh:
        fh.write(json.dumps({"step": i, "loss": 1 / (i + 1)}) + "\\n")
    time.sleep(0.05)
"""


def _group_members(pgid: int) -> list[str]:
    """The commands of the live (not zombie) processes in a process group."""
    members = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as fh:
                command, fields = fh.read().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, IndexError, ValueError):
            continue
        fields = fields.split()
        if fields[2] == str(pgid) and fields[0] != "Z":
            members.append(command)
    return members


def _lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _start(cli, home, root, experiment: str | None = None) -> tuple[str, dict]:
    args = ["run", str(root), "--executor", "process", "--json"] + (["-e", experiment] if experiment else [])
    started = cli(*args)
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    pid_file = home / "runs" / run_id / "pid"
    wait_for(pid_file.exists)
    return run_id, json.loads(pid_file.read_text())


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
    run_id, pid = _start(cli, home, root, "s")
    cancelled = cli("runs", "cancel", run_id, "--json").json()
    assert cancelled["status"] == "cancelled"
    assert _group_members(pid["pid"]) == []
    killed = cli("run", str(root), "-e", "k", "--executor", "process", "--wait", "--json").json()
    assert killed["status"] == "failed" and "signal 15 (SIGTERM)" in killed["status_reason"]


def test_missing_program_is_a_failed_run_with_reason(cli, make_project):
    root = make_project('[experiments.x]\nimage = "busybox:latest"\ncommand = ["no-such-program-here"]\n')
    result = cli("run", str(root), "--executor", "process", "--wait", "--json")
    assert result.code == 1
    run_id = result.json()["id"]
    assert result.json()["exit_code"] == 127
    assert "cannot start 'no-such-program-here'" in cli("runs", "logs", run_id).out


def test_killed_supervisor_loses_no_output(cli, make_project, home):
    """kill -9 of the supervisor mid-run: the experiment goes on, the run stays running, and every line and
    point it writes afterwards is stored exactly once."""
    root = make_project('[experiments.c]\nimage = "busybox:latest"\ncommand = '
                        + json.dumps([sys.executable, "count.py"]) + "\n", {"count.py": COUNTER})
    run_id, pid = _start(cli, home, root)
    stdout = home / "runs" / run_id / "stdout.log"
    wait_for(lambda: len(_lines(stdout)) >= 5)
    os.kill(pid["shim"], signal.SIGKILL)
    wait_for(lambda: len(_lines(stdout)) >= 20)  # the experiment writes on, followed all along
    assert cli("runs", "show", run_id, "--json").json()["status"] == "running"
    run = wait_for(lambda: (r := cli("runs", "show", run_id, "--json").json())["status"] != "running" and r)
    # a final status is recorded once: had the run been taken for lost, it would have stayed so
    assert run["status"] == "failed" and run["exit_code"] is None and run["status_reason"] == SUPERVISOR_KILLED
    assert run["metrics"]["loss"]["points"] == 60
    lines = cli("runs", "logs", run_id).out.splitlines()
    assert [l for l in lines if l.startswith("line")] == [f"line {i}" for i in range(60)]
    assert [l for l in lines if l.startswith("warn")] == [f"warn {i}" for i in range(0, 60, 10)]
    assert len(lines) == 66
    assert _group_members(pid["pid"]) == []


def test_cancel_after_the_supervisor_was_killed(cli, make_project, home):
    """With its supervisor gone, cancel signals the run's process group itself: SIGTERM, then SIGKILL for
    what ignores it (here a member that outlives the group's leader)."""
    script = "(trap '' TERM; exec sleep 300) & exec sleep 300"
    root = make_project('[experiments.s]\nimage = "busybox:latest"\ncommand = ' + json.dumps(["sh", "-c", script]) + "\n")
    run_id, pid = _start(cli, home, root)
    wait_for(lambda: _group_members(pid["pid"]) == ["sleep", "sleep"])  # the trap is set: TERM is ignored
    os.kill(pid["shim"], signal.SIGKILL)
    started = time.monotonic()
    cancelled = cli("runs", "cancel", run_id, "--json")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json()["status"] == "cancelled"
    assert time.monotonic() - started >= 10  # the TERM-proof member needed the SIGKILL after the grace period
    assert _group_members(pid["pid"]) == []


def test_status_follows_the_process_group_and_is_not_fooled_by_recycled_pids(tmp_path):
    """Supervisor gone and no exit.json: running while any member of the run's group lives (the leader or
    what it started), then ended with an unknown exit code; pids whose start time differs are not the run."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "pid").write_text("{}")
    dead = subprocess.Popen(["true"])
    dead.wait()
    group = subprocess.Popen(["sh", "-c", "sleep 300 & exec sleep 300"], process_group=0)
    try:
        wait_for(lambda: len(_group_members(group.pid)) == 2)
        with open(f"/proc/{group.pid}/stat") as fh:
            leader_start = fh.read().rsplit(")", 1)[1].split()[19]
        executor = ProcessExecutor(Machine("local", "local"), LocalHost(tmp_path), BackendSettings())
        handle = Handle(str(run_dir), "local", shim=dead.pid, pid=group.pid, proc_start=leader_start)
        assert executor.status(handle).state == "running"
        group.kill()
        group.wait()  # the leader is gone; the member it started lives on
        assert executor.status(handle).state == "running"
        os.killpg(group.pid, signal.SIGKILL)
        wait_for(lambda: not _group_members(group.pid))
        state = executor.status(handle)
        assert (state.state, state.exit_code, state.reason) == ("exited", None, SUPERVISOR_KILLED)
        # Our own pid, as if the shim's and the leader's pids had been reused by another process since.
        recycled = Handle(str(run_dir), "local", shim=os.getpid(), shim_start="1", pid=os.getpid(),
                          proc_start="1")
        assert executor.status(recycled).state == "exited"
        (run_dir / "pid").unlink()
        assert executor.status(recycled).state == "missing"
    finally:
        _kill_group(group.pid)


def test_logs_are_whole_lines_of_both_streams_from_one_offset(tmp_path):
    """While the run lives only whole lines are read; once it has ended a last line without its newline
    counts. One offset covers stdout and stderr, so a resumed read repeats nothing."""
    gate = tmp_path / "go"
    script = ("import os, sys, time\n"
              "sys.stdout.write('one\\ntw'); sys.stdout.flush()\n"
              "sys.stderr.write('oops\\n'); sys.stderr.flush()\n"
              f"while not os.path.exists({str(gate)!r}): time.sleep(0.01)\n"
              "sys.stdout.write('o\\nlast'); sys.exit(3)\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    executor = ProcessExecutor(Machine("local", "local"), LocalHost(tmp_path), BackendSettings())
    handle = executor.submit(Launch(run_id="r1", project="p", argv=[sys.executable, "-c", script],
                                    env={}, snapshot_dir=tmp_path, run_dir=run_dir))
    try:
        wait_for(lambda: (run_dir / "stderr.log").exists() and (run_dir / "stderr.log").read_bytes() == b"oops\n")
        before = time.time_ns()
        first = list(executor.read_logs(handle, "", follow=False))
        records = [split_line(l) for c in first for l in c.data.decode().splitlines()]
        assert [r[1:] for r in records] == [("out", "one"), ("err", "oops")]
        assert all(abs(stamp_to_ns(r[0]) - before) < 5e9 for r in records)
        offset = first[-1].offset
        assert offset == "4,5" and not first[-1].eof
        assert list(executor.read_logs(handle, offset, follow=False)) == []  # "tw" is not a line yet
        gate.touch()
        wait_for(lambda: executor.status(handle).state == "exited")
        state = executor.status(handle)
        assert state.exit_code == 3 and state.reason is None
        rest = list(executor.read_logs(handle, offset, follow=False))
        assert [split_line(l)[1:] for c in rest for l in c.data.decode().splitlines()] == [("out", "two"), ("out", "last")]
        assert rest[-1].offset == "12,5" and rest[-1].eof
        assert executor.adopt("r1", run_dir) == handle  # found again from its run dir
        assert executor.adopt("r2", tmp_path / "never-started") is None
        executor.cleanup(handle)
        assert not (run_dir / "stdout.log").exists() and not (run_dir / "stderr.log").exists()
    finally:
        executor.cancel(handle)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_follow_that_sees_the_end_after_its_last_lines_still_ends_with_eof(tmp_path, monkeypatch):
    """The run writes its last line and exits between the follower's status look and its read: the lines
    come in a chunk that cannot say eof, so an empty eof chunk follows them."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "stdout.log").write_bytes(b"done\n")
    executor = ProcessExecutor(Machine("local", "local"), LocalHost(tmp_path), BackendSettings())
    looks = iter([RunState("running"), RunState("exited", exit_code=0)])
    monkeypatch.setattr(executor, "status", lambda handle: next(looks))
    chunks = list(executor.read_logs(Handle(str(run_dir), "local"), "0", follow=True))
    assert [c.eof for c in chunks] == [False, True]
    assert chunks[-1].data == b"" and chunks[-1].offset == chunks[0].offset == "5,0"
