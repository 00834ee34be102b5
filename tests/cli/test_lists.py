"""Issue 22, item 17: `sweeps list` has a header row; the histories the CLI lists (a model's alias history,
as a deployment's) are newest first, as in the app. Real runs (process executor), a real sweep."""

from __future__ import annotations

from helpers import wait_for

TRAIN = """
import json, os, sys
open(os.path.join(os.environ["WORKBENCH_OUTPUT"], "model.txt"), "w").write(sys.argv[1])
with open(os.environ["WORKBENCH_METRICS"], "a") as fh:
    fh.write(json.dumps({"score": float(sys.argv[1])}) + "\\n")
"""
SPEC = """
[project]
name = "lists"
[experiments.train]
image = "python:3.11-slim"
command = ["python3", "train.py", "{x}"]
params = { x = 1.0 }
artifacts = ["model.txt"]
"""


def test_sweeps_list_has_a_header_row(cli, make_project):
    root = make_project(SPEC + '[experiments.train.sweep]\nx = [1.0, 2.0]\nobjective = "score"\n',
                        {"train.py": TRAIN})
    started = cli("sweep", str(root), "--executor", "process", "--json")
    assert started.code == 0, started.err
    sweep_id = started.json()["id"]
    wait_for(lambda: cli("sweeps", "show", sweep_id, "--json").json()["status"] != "running", timeout=120,
             interval=0.5)
    lines = cli("sweeps", "list").out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PROJECT/EXPERIMENT", "METHOD", "TRIALS", "PROGRESS", "BEST"], lines
    row = lines[1].split()
    assert row[:4] == [sweep_id, "done", "lists/train", "grid"], lines
    best = cli("sweeps", "show", sweep_id, "--json").json()["best"]
    assert lines[1][lines[0].index("BEST"):].split()[0] == best, lines


def test_a_models_alias_history_is_newest_first(cli, make_project):
    root = make_project(SPEC, {"train.py": TRAIN})
    for x in ("1.0", "2.0"):
        run = cli("run", str(root), "-p", f"x={x}", "--executor", "process", "--wait", "--json")
        assert run.code == 0, run.err
        assert cli("models", "register", run.json()["id"], "model.txt", "--name", "m").code == 0
    for version in ("1", "2"):
        assert cli("models", "alias", "m", version, "production").code == 0
    lines = cli("models", "show", "m").out.splitlines()
    history = lines[lines.index("  alias history:") + 1:]
    assert [line.split("@production")[1].split("by")[0].strip() for line in history] == ["1 → 2", "→ 1"], history
