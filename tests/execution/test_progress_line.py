"""Issue 14, item 1: a progress bar redrawn with `\\r` (tqdm) is live while the run goes, and the history
keeps its last state as one line. Real Docker engine and real processes; `runs logs --follow` under a pty."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from helpers import PROGRESS_BARS, assert_progress_bars_stored, wait_for
from workbench.services import Workbench

BAR = r"""
[project]
name = "bar"
[experiments.bar]
image = "busybox:latest"
command = ["sh", "-c", "echo start; i=0; while [ $i -le {n} ]; do printf '\\rtraining: %d/{n}' $i >&2; sleep 0.3; i=$((i+1)); done; printf '\\n' >&2; echo done"]
params = {{ n = 15 }}
"""


def _read_pty(fd: int, seconds: float) -> bytes:
    out, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


@pytest.mark.parametrize("executor", ["docker", "process"])
def test_a_progress_bar_is_live_and_stored_once(cli, make_project, home, executor, request):
    if executor == "docker":
        request.getfixturevalue("docker_client")
    root = make_project(BAR.format(n="{n}"))
    run_id = cli("run", str(root), "--executor", executor, "-p", "n=15", "--json").json()["id"]
    wb = Workbench()
    try:
        started = time.monotonic()
        seen = wait_for(lambda: wb.progress_line(run_id), timeout=10, interval=0.1)
        assert re.fullmatch(r"training: \d+/15", seen), seen
        assert time.monotonic() - started < 5  # live, not at the end (the bar has no newline for 4.5 s)
        later = wait_for(lambda: (line := wb.progress_line(run_id)) and line != seen and line, timeout=5)
        assert int(later.split()[1].split("/")[0]) > int(seen.split()[1].split("/")[0])

        main, secondary = pty.openpty()
        follower = subprocess.Popen([sys.executable, "-m", "workbench", "runs", "logs", run_id, "--follow"],
                                    stdout=secondary, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "WORKBENCH_HOME": str(home)})
        os.close(secondary)
        shown = _read_pty(main, 1.5)
        follower.wait(timeout=30)
        shown += _read_pty(main, 0.5)
        os.close(main)
        assert b"\r\x1b[Ktraining: " in shown, shown[-300:]  # drawn in place on the terminal

        wait_for(lambda: cli("runs", "show", run_id, "--json").json()["status"] == "succeeded", timeout=30)
        stored = cli("runs", "logs", run_id).out.splitlines()
        assert [line for line in stored if line.startswith("training")] == ["training: 15/15"]  # one, its last
        assert wb.progress_line(run_id) is None
        assert not (home / "runs" / run_id / "progress.txt").exists()
    finally:
        wb.close()


FAST_BAR = r"""
[project]
name = "fast-bar"
[experiments.bar]
image = "python:3.11-slim"
command = ["python3", "progress_bars.py", "{n}"]
params = { n = 100000 }
"""


@pytest.mark.parametrize("executor", ["docker", "process"])
def test_a_bar_redrawn_100k_times_is_stored_once_in_its_last_state(cli, make_project, home, executor, request):
    """Issue 22, item 1: a bar redrawn at well over 10,000 times a second, with multi-byte characters,
    is stored as its last state once; no line is cut at a read or a 16 KiB Docker log record."""
    if executor == "docker":
        request.getfixturevalue("docker_client")
    root = make_project(FAST_BAR, files={"progress_bars.py": PROGRESS_BARS.read_text()})
    done = cli("run", str(root), "--executor", executor, "--wait", "--json")
    assert done.code == 0, done.err
    run = done.json()
    assert run["status"] == "succeeded", run
    rate = assert_progress_bars_stored((home / "runs" / run["id"] / "logs.txt").read_bytes(), 100_000)
    assert rate >= 10_000


WATCHED_BAR = FAST_BAR.replace('"{n}"]', '"{n}", "{seconds}", "{output}/go"]').replace(
    "n = 100000 }", "n = 100000, seconds = 3 }")
FRAME = re.compile(r"(loss \d\.\d{6}|eval ✓): +\d+%\|[█▏▎▍▌▋▊▉ ]{20}\| (\d+)/(100000|1000)")


@pytest.mark.parametrize("executor", ["docker", "process"])
def test_runs_logs_follow_draws_a_fast_bar_in_place_and_scrolls_only_whole_lines(cli, make_project, home, executor,
                                                                                  request):
    """Issue 22, item 1, on a terminal: a bar redrawn ~33,000 times a second for 3 s. `runs logs --follow`
    scrolls exactly the stored lines (no fragment) and draws the bar in place as it goes, each drawn state a
    whole redraw (no cut frame, no half character), keeping up with it."""
    if executor == "docker":
        request.getfixturevalue("docker_client")
    root = make_project(WATCHED_BAR, files={"progress_bars.py": PROGRESS_BARS.read_text()})
    run_id = cli("run", str(root), "--executor", executor, "--json").json()["id"]
    main, secondary = pty.openpty()
    follower = subprocess.Popen([sys.executable, "-m", "workbench", "runs", "logs", run_id, "--follow"],
                                stdout=secondary, stderr=subprocess.DEVNULL,
                                env={**os.environ, "WORKBENCH_HOME": str(home)})
    os.close(secondary)
    wb = Workbench()
    try:
        shown = b""
        deadline = time.monotonic() + 60
        while wb.progress_line(run_id) != "waiting for go":  # the bar starts once it is seen live
            assert time.monotonic() < deadline, shown[-300:]
            shown += _read_pty(main, 0.1)
        (home / "runs" / run_id / "out" / "go").touch()
    finally:
        wb.close()
    while follower.poll() is None:
        shown += _read_pty(main, 0.5)
    shown += _read_pty(main, 0.5)
    os.close(main)
    assert follower.returncode == 0

    scrolled, drawn = [], []
    for piece in shown.decode("utf-8").replace("\r\n", "\n").split("\r\x1b[K"):  # strict: no half character
        if piece.endswith("\n"):
            scrolled += piece[:-1].split("\n")
        elif piece:
            drawn.append(piece)
    stored = [line for line in cli("runs", "logs", run_id).out.split("\n")[:-1]]
    assert len(stored) == 5 and scrolled == stored, [line[:80] for line in scrolled[:10]]
    assert [line for line in drawn if not FRAME.fullmatch(line) and line != "waiting for go"] == []
    counts = [int(m.group(2)) for line in drawn if (m := FRAME.fullmatch(line)) and m.group(3) == "100000"]
    assert len(set(counts)) >= 5 and counts == sorted(counts), counts  # live, in order
    assert counts[-1] >= 50_000, counts  # the last state drawn before the bar ended is recent, not seconds behind
