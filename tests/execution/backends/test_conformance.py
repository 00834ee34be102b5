"""The backend conformance suite: every backend (docker, process, ssh_process, slurm; the rig: conftest.py)
passes the same tests, driven through the Executor interface only, its handle passed back as submit gave it.
Where backends differ, the expectation says so per backend, with the reason."""

from __future__ import annotations

import json
import posixpath
import re
import secrets
import time

import pytest

from workbench.execution.base import Adopts
from workbench.execution.runtime import SOURCE as runtime_source, runtime_dir, runtime_key
from workbench.services import Workbench

STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
ENDS_WITHIN = 120.0  # seconds any run here may take, a Slurm job's wait in the queue included
SIGTERM = "killed by signal 15 (SIGTERM)"
SIGKILL = "killed by signal 9 (SIGKILL)"
# the reason a cancelled run ends with: the signal; where Slurm ended the job, Slurm's word for it
CANCELLED = {"docker": SIGTERM, "process": SIGTERM, "ssh_process": SIGTERM, "slurm": "cancelled in Slurm (CANCELLED)"}


def cancelled_within(rig) -> float:
    """Seconds from cancel() to a status that is no longer running, 5 s of them for a loaded machine. docker,
    process and ssh_process send SIGTERM, and SIGKILL 10 s later to what is left. Slurm: scancel, then cancel()
    waits up to 15 s for the job's exit record, and the run stays running while squeue still lists the job as
    ending (COMPLETING), up to 3 poll intervals + 5 s (SlurmExecutor._may_say_more), so that Slurm's word can
    replace the signal."""
    return 15 + 3 * rig.slurm_poll + 5 + 5.0 if rig.kind == "slurm" else 10 + 5.0


def records(data: bytes) -> list[tuple[str, str]]:
    """(stream, text) of stored log lines `<RFC3339 UTC time> <out|err> <text>\\n`, each line checked."""
    assert data == b"" or data.endswith(b"\n"), data[-80:]
    found = []
    for line in data.split(b"\n")[:-1]:
        stamp, stream, text = line.split(b" ", 2)
        assert STAMP.fullmatch(stamp) and stream in (b"out", b"err"), line
        found.append((stream.decode(), text.decode()))
    return found


def by_stream(found: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each stream's lines in its own order (how two streams interleave depends on when they were read)."""
    return {stream: [text for s, text in found if s == stream] for stream in ("out", "err")}


def counted(n: int, tail: str | None = None, gated: bool = False) -> dict[str, list[str]]:
    """What `count.sh N PAUSE [TAIL]` prints (conftest.py), with GATE=1 when `gated`."""
    out = [f"out {i}" for i in range(1, n + 1)]
    if gated:
        out.insert(n // 2, "half a line")
    return {"out": out + ([tail] if tail else []), "err": [f"err {i}" for i in range(1, n + 1)]}


def metric_lines(n: int, gated: bool = False) -> list[dict]:
    lines = [{"step": i, "x": i} for i in range(1, n + 1)]
    if gated:
        lines.insert(n // 2, {"gate": 1})
    return lines


def wait_ended(executor, handle, timeout: float = ENDS_WITHIN):
    """The run's state once it no longer runs."""
    deadline = time.monotonic() + timeout
    while (state := executor.status(handle)).state == "running":
        assert time.monotonic() < deadline, f"still running after {timeout:.0f}s"
        time.sleep(0.1)
    return state


def read_logs_from(executor, handle, offset: str) -> list[tuple[str, str]]:
    """Every record from `offset`, not following."""
    found = []
    for chunk in executor.read_logs(handle, offset, False):
        assert chunk.refused is None and chunk.rewritten_at is None, chunk
        found += records(chunk.data)
    return found


def read_metrics_from(executor, handle, offset: str, final: bool, limit: int = 64) -> list[tuple[list[dict], str]]:
    """Every metric line from `offset`, `limit` bytes a read (so several reads), each read from the offset the
    last one handed back (as the ingestor reads, until one hands back no line and the same offset): (lines,
    offset after them) of each read."""
    chunks = []
    while True:
        chunk = executor.read_metrics(handle, offset, limit, final)
        assert chunk.refused is None and chunk.rewritten_at is None, chunk
        if not chunk.data and chunk.offset == offset:
            return chunks
        offset = chunk.offset
        chunks.append(([json.loads(line) for line in chunk.data.splitlines()], offset))


def all_metrics(executor, handle, offset: str = "") -> list[dict]:
    """Every metric line from `offset` of a run that has ended."""
    return [line for lines, _ in read_metrics_from(executor, handle, offset, True) for line in lines]


def test_launch_runs_then_exits_zero(rig):
    """A submitted run runs (held here until the test lets it go on) from its snapshot, then exits 0."""
    run = rig.submit(["sh", "count.sh", "4", "0"], env={"GATE": "1"})
    executor = rig.executor
    assert executor.status(run.handle).state == "running"
    rig.open_gate(run)
    state = wait_ended(executor, run.handle)
    assert (state.state, state.exit_code, state.reason) == ("exited", 0, None)
    assert state.started_at is not None


def test_the_runtime_comes_first_on_the_runs_pythonpath(rig):
    """Every run finds workbench/runtime (the notebook runner, workbench_log) first on its PYTHONPATH, readable
    where it runs: a copy in the data dir here (snap Docker and Docker Desktop cannot mount the installed
    package's folder), a copy sent once to an SSH host, mounted read-only in a container. The experiment's own
    PYTHONPATH comes after it."""
    where = runtime_dir(rig.executor.host)
    assert where != str(runtime_source) and where == runtime_dir(rig.executor.host)  # written once, then found
    assert posixpath.basename(where) == runtime_key()
    probe = 'touch "$first/.probe" 2>/dev/null && echo writable || echo read-only' if rig.kind == "docker" else "true"
    run = rig.submit(["sh", "-c", 'echo "$PYTHONPATH"; first=${PYTHONPATH%%:*}; '
                                  'test -r "$first/workbench_log.py" && test -r "$first/workbench_nbrun.py" && echo readable; '
                                  + probe],
                     env={"PYTHONPATH": "/opt/mine"}, runtime_dir=where)
    assert wait_ended(rig.executor, run.handle).exit_code == 0
    out = by_stream(read_logs_from(rig.executor, run.handle, ""))["out"]
    first = "/wb/lib" if rig.kind == "docker" else where
    assert out[:2] == [f"{first}:/opt/mine", "readable"], out
    if rig.kind == "docker":
        assert out[2] == "read-only"


def test_follow_returns_every_line_of_both_streams(rig):
    """read_logs(follow=True) ends when the run does, having returned every line it printed once, in the
    stored line format, stdout and stderr marked."""
    run = rig.submit(["sh", "count.sh", "20", "0.02"])
    executor = rig.executor
    data = b"".join(chunk.data for chunk in executor.read_logs(run.handle, "", True))
    assert by_stream(records(data)) == counted(20)
    assert executor.status(run.handle).state == "exited"


def test_reads_from_any_offset_handed_back_read_each_line_once(rig):
    """Logs and metrics read while the run runs, each read from the offset the last one handed back: every
    line once, none lost, the last one (no newline) once the run has ended; a read from any offset handed
    back, the one saved mid-run included, returns exactly the lines after it."""
    run = rig.submit(["sh", "count.sh", "12", "0.02", "the last, without newline"], env={"GATE": "1"})
    executor = rig.executor
    logs: list[tuple[str, str]] = []
    metrics: list[dict] = []
    log_marks = [("", 0)]        # (offset handed back, lines read before it)
    metric_marks = [("", 0)]
    middle, paused = None, 0.0
    deadline = time.monotonic() + ENDS_WITHIN
    while True:
        ended = executor.status(run.handle).state != "running"  # looked at first: then nothing is left unread
        for chunk in executor.read_logs(run.handle, log_marks[-1][0], False):
            logs += records(chunk.data)
            log_marks.append((chunk.offset, len(logs)))
        for lines, offset in read_metrics_from(executor, run.handle, metric_marks[-1][0], ended):
            metrics += lines
            metric_marks.append((offset, len(metrics)))
        if middle is None and ("out", "out 6") in logs and ("err", "err 6") in logs and len(metrics) >= 6:
            # at its gate, the run writes half a line of each kind and waits: read on a while, then let it go
            paused = paused or time.monotonic()
            if time.monotonic() - paused > 0.5:
                middle = (log_marks[-1], metric_marks[-1])
                rig.open_gate(run)
        if ended:
            break
        assert time.monotonic() < deadline, f"still running after {ENDS_WITHIN:.0f}s"
        time.sleep(0.05)

    assert middle is not None, "the run ended without being read at its middle"
    assert by_stream(logs) == counted(12, "the last, without newline", gated=True)
    assert metrics == metric_lines(12, gated=True)
    assert middle[0][1] == 12 and middle[1][1] == 6  # saved mid-run: out/err 1..6, steps 1..6, half a line each
    for offset, before in log_marks:
        assert by_stream(read_logs_from(executor, run.handle, offset)) == by_stream(logs[before:]), (offset, before)
    for offset, before in metric_marks:
        assert all_metrics(executor, run.handle, offset) == metrics[before:], (offset, before)


def test_cancel_ends_a_sleeping_run(rig):
    """cancel() stops a run that sleeps: SIGTERM (its exit code 143); its status is no longer running within
    the backend's bound."""
    run = rig.submit(["sh", "-c", "echo sleeping; exec sleep 600"])
    executor = rig.executor
    deadline = time.monotonic() + ENDS_WITHIN
    while ("out", "sleeping") not in read_logs_from(executor, run.handle, ""):
        assert executor.status(run.handle).state == "running"
        assert time.monotonic() < deadline, "it never started"
        time.sleep(0.1)
    cancelled = time.monotonic()
    executor.cancel(run.handle)
    state = wait_ended(executor, run.handle, cancelled_within(rig) - (time.monotonic() - cancelled))
    assert (state.state, state.exit_code, state.reason) == ("exited", 143, CANCELLED[rig.kind])


def test_a_fresh_backend_adopts_a_submitted_run(rig):
    """A new backend object (another Executors, as a process whose launcher died would have) finds the run
    from its id and run dir; status and logs read through the adopted handle. A run never submitted: None."""
    run = rig.submit(["sh", "count.sh", "6", "0.02"], env={"GATE": "1"})
    fresh = Workbench(rig.wb.dirs)
    try:
        executor = fresh._services.executors.get(rig.machine, rig.executor_kind)
        assert executor is not rig.executor and isinstance(executor, Adopts)
        adopted = executor.adopt(run.run_id, run.run_dir)
        assert adopted is not None
        assert executor.status(adopted).state == "running"  # held at its gate
        rig.open_gate(run)
        state = wait_ended(executor, adopted)
        assert (state.state, state.exit_code) == ("exited", 0)
        assert by_stream(read_logs_from(executor, adopted, "")) == counted(6, gated=True)
        assert all_metrics(executor, adopted) == metric_lines(6, gated=True)
        never = secrets.token_hex(4)
        assert executor.adopt(never, executor.host.run_dir(never)) is None
    finally:
        fresh.close()


# (exit code, reason) per backend. A program that exits 128+N itself: the local process executor's supervisor
# (Python) tells that from a kill by signal N; sh's `wait` (the SSH and Slurm supervisors) and Docker's init
# report both as 128+N, recorded as the signal (see the module docstring of the SSH process backend).
EXITS = {
    "exit 3": ("echo bye; exit 3", {kind: (3, None) for kind in ("docker", "process", "ssh_process", "slurm")}),
    "killed": ("echo bye; kill -KILL $$", {kind: (137, SIGKILL) for kind in ("docker", "process", "ssh_process", "slurm")}),
    "exit 137": ("echo bye; exit 137", {"docker": (137, SIGKILL), "process": (137, None),
                                        "ssh_process": (137, SIGKILL), "slurm": (137, SIGKILL)}),
}


@pytest.mark.parametrize("case", list(EXITS))
def test_exit_codes_and_signals(rig, case):
    script, expected = EXITS[case]
    run = rig.submit(["sh", "-c", script])
    state = wait_ended(rig.executor, run.handle)
    assert (state.state, state.exit_code, state.reason) == ("exited", *expected[rig.kind])
