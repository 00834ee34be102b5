"""Issue 22, items 16 and 17: a queued run says why once, and `workbench queue` on an 80-column terminal
shows the whole REASON, wrapped by whole words under its column. A real queued run: it asks for a GPU, this
workstation has none and the only other machine is an SSH host that does not answer (a closed port on a
loopback address), so placement cannot rule it out and the run waits."""

from __future__ import annotations

import pytest

from helpers import free_port

SPEC = """
[project]
name = "wants-a-gpu"
[experiments.train-with-a-long-name]
image = "busybox:latest"
command = ["sh", "-c", "echo hi"]
gpus = 1
"""


@pytest.fixture
def queued(cli, make_project):
    added = cli("machines", "add", "ghost", "--ssh", f"root@127.0.0.9:{free_port()}")
    assert added.code == 0, added.err
    started = cli("run", str(make_project(SPEC)), "--machine", "auto")
    assert started.code == 0, started.err
    run_id = started.out.strip()
    try:
        yield run_id, started, cli("runs", "show", run_id, "--json").json()
    finally:
        cli("runs", "cancel", run_id)


def test_a_queued_run_says_its_reason_once(queued):
    run_id, started, recorded = queued
    assert recorded["status"] == "queued" and recorded["status_reason"]
    assert started.err.count(recorded["status_reason"]) == 1, started.err
    assert "workbench queue" in started.err  # and where to look


def test_queue_wraps_the_reason_by_whole_words_at_80_columns(queued, tty_cli):
    run_id, _, recorded = queued
    shown = tty_cli("queue", columns=80)
    assert shown.code == 0, shown.out
    lines = shown.out.splitlines()
    assert all(len(line) <= 80 for line in lines), shown.out
    assert lines[0].split() == ["ID", "PRI", "GPUS", "PROJECT/EXPERIMENT", "WAITING", "REASON"]
    column = lines[0].index("REASON")
    assert lines[1].startswith(run_id)
    reason_lines = [line[column:] for line in lines[1:]]
    assert all(not line[:column].strip() for line in lines[2:]), shown.out  # continuation under REASON only
    assert " ".join(reason_lines).split() == recorded["status_reason"].split(), shown.out  # whole, word for word
    assert "…" in lines[1][:column]  # the long experiment name gave way to it


def test_the_reason_names_each_machine_once(queued):
    """Issue 22: the SSH error already began with the host's name, and the reason put it before it again
    (`ghost ghost: cannot reach …`)."""
    _, _, recorded = queued
    reason = recorded["status_reason"]
    assert reason.count("ghost") == 1 and "; ghost cannot reach 127.0.0.9:" in reason, reason
    assert reason.startswith("waiting: local "), reason
