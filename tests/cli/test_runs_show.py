"""Issue 22, item 2: `runs show` (text) shows what the README says it shows: the run's events (time, kind,
message) and its placement (where it went and why, as recorded), as `--json` has them. A real run."""

from __future__ import annotations

import re
import time

SPEC = """
[project]
name = "tiny"
[experiments.t]
image = "python:3.11-slim"
command = ["python3", "-c", "print('hi')"]
params = { lr = 0.1 }
"""


def test_runs_show_prints_placement_and_events(cli, make_project):
    root = make_project(SPEC)
    done = cli("run", str(root), "--machine", "auto", "--executor", "process", "--wait", "--json")
    assert done.code == 0, done.err
    run_id = done.json()["id"]
    recorded = cli("runs", "show", run_id, "--json").json()
    assert recorded["placement"]["reason"] and len(recorded["events"]) >= 3

    shown = cli("runs", "show", run_id)
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    placed = next(line for line in lines if line.strip().startswith("placed"))
    assert recorded["placement"]["reason"] in placed and "auto" in placed, placed  # why, and what was asked
    start = lines.index("events")
    for event, line in zip(recorded["events"], lines[start + 1:]):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["ts"]))
        assert re.fullmatch(rf"  {re.escape(stamp)}  {event['kind']}\s+{re.escape(event['message'])}", line), line
    assert [e["kind"] for e in recorded["events"]][:3] == ["created", "placed", "started"]
