"""Issue 22, item 5: at 80 and 100 columns `runs list` shows what tells the runs apart (the param that
differs within the list first) and the value a researcher reads (the first check's metric, or a sweep's
objective, first); never a column of only `…`. Real runs (process executor), on a real terminal (pty)."""

from __future__ import annotations

import re

import pytest

from helpers import wait_for

# The check's metric and the objective are written last, after metrics with long names: a table showing
# the metrics in their recorded order would never reach them at 80 columns.
TRAIN = """
import json, os, sys
lr = float(sys.argv[1])
with open(os.environ["WORKBENCH_METRICS"], "a") as fh:
    fh.write(json.dumps({"step": 1, "train_loss_smoothed": 0.25, "learning_rate_now": lr,
                         "test_acc": round(0.9 + lr, 4), "score": -lr}) + "\\n")
"""
SPEC = """
[project]
name = "digits-classifier"
[experiments.train]
image = "python:3.11-slim"
command = ["python3", "train.py", "{lr}"]
params = { batch_size = 128, epochs = 5, hidden = 256, lr = 0.01 }
[experiments.train.checks]
test_acc = ">= 0.5"
"""
EVAL = """
[experiments.eval]
image = "python:3.11-slim"
command = ["python3", "-c", "print('evaluated')"]
"""
SWEEP = """
[experiments.train.sweep]
lr = [0.02, 0.04]
objective = "score"
"""


def listed(tty_cli, columns: int) -> list[str]:
    shown = tty_cli("runs", "list", columns=columns)
    assert shown.code == 0, shown.out
    lines = shown.out.splitlines()
    assert lines and all(len(line) <= columns for line in lines), shown.out
    return lines


def columns_of(lines: list[str], name: str) -> list[str]:
    """The text under the header `name` in each row (from its start to the next column's)."""
    header = lines[0]
    start = header.index(name)
    after = re.search(r"  \S", header[start:])
    end = start + after.start() + 2 if after else None
    return [line[start:end].strip() for line in lines[1:]]


def assert_no_column_of_only_ellipses(lines: list[str]) -> None:
    for name in lines[0].split():
        assert set(columns_of(lines, name)) - {"…", ""}, (name, lines)


@pytest.mark.parametrize("columns", [80, 100])
def test_the_differing_param_and_the_checked_metric_are_visible(cli, tty_cli, make_project, columns):
    root = make_project(SPEC, {"train.py": TRAIN})
    for lr in ("0.1", "0.03"):
        done = cli("run", str(root), "-p", f"lr={lr}", "--executor", "process", "--wait", "--json")
        assert done.code == 0, done.err
    lines = listed(tty_cli, columns)
    assert len(lines) == 3
    assert_no_column_of_only_ellipses(lines)
    rows = "\n".join(lines[1:])
    assert "lr=0.03" in lines[1] and "lr=0.1" in lines[2], rows  # the param that differs, newest first
    assert "test_acc=0.93" in lines[1] and "test_acc=1" in lines[2], rows  # the check's metric
    assert "digits" in rows  # the project still named, if shortened


@pytest.mark.parametrize("columns", [80, 100])
def test_a_sweeps_objective_is_shown_first(cli, tty_cli, make_project, columns):
    root = make_project(SPEC + SWEEP, {"train.py": TRAIN})
    started = cli("sweep", str(root), "--executor", "process", "--json")
    assert started.code == 0, started.err
    sweep_id = started.json()["id"]
    wait_for(lambda: cli("sweeps", "show", sweep_id, "--json").json()["status"] != "running", timeout=120,
             interval=0.5)
    lines = listed(tty_cli, columns)
    assert len(lines) == 3
    assert_no_column_of_only_ellipses(lines)
    assert {re.search(r"lr=\S+", line).group() for line in lines[1:]} == {"lr=0.02", "lr=0.04"}
    assert {re.search(r"score=\S+", line).group() for line in lines[1:]} == {"score=-0.02", "score=-0.04"}


def test_a_run_without_those_params_does_not_hide_the_one_that_differs(cli, tty_cli, make_project):
    root = make_project(SPEC + EVAL, {"train.py": TRAIN})
    for lr in ("0.1", "0.03"):
        assert cli("run", str(root), "-e", "train", "-p", f"lr={lr}", "--executor", "process", "--wait").code == 0
    assert cli("run", str(root), "-e", "eval", "--executor", "process", "--wait").code == 0
    lines = listed(tty_cli, 80)
    assert_no_column_of_only_ellipses(lines)
    assert "lr=0.03" in lines[2] and "lr=0.1" in lines[3], lines  # lr differs where it is set
