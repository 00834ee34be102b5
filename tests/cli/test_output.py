"""Issue 9, items 12 and 15: `workbench runs list` fits the terminal's width without cutting a number
(a cell too narrow shows whole items and `…`), and an empty answer to a filter says so."""

from __future__ import annotations

import re

import pytest

from workbench.services import Workbench

NOW = 1_795_000_000.0
PARAMS = {"lr": 0.001, "iterations": 2000, "batch_size": 40000, "momentum": 0.9}
SUMMARY = {"test_acc": 0.9556, "loss": 0.125}


@pytest.fixture
def history(home):
    """Two finished runs, one with many params and a long project name; one with a control character."""
    wb = Workbench()
    try:
        for i, (project, params, summary) in enumerate([
            ("a-rather-long-project-name", PARAMS, SUMMARY),
            ("mnist", {"note": "a\x1b[2Jb", "epochs": 15}, {"acc": 0.5}),
        ]):
            wb._services.store.insert_run({"id": f"run0000{i}", "project": project, "project_path": "/p", "experiment": "sweep",
                                 "status": "succeeded", "machine": "local", "executor": "process",
                                 "created_at": NOW - 100 + i, "started_at": NOW - 99 + i, "finished_at": NOW - 90 + i,
                                 "params": params, "summary": summary})
    finally:
        wb.close()


def key_values(text: str) -> list[str]:
    return re.findall(r"\S+=\S*", text)


WHOLE = {f"{k}={v}" for k, v in {**PARAMS, **SUMMARY}.items()} | {"note=a\\x1b[2Jb", "epochs=15", "acc=0.5"}


@pytest.mark.usefixtures("history")
def test_runs_list_fits_80_columns_without_cutting_a_number(cli):
    result = cli("runs", "list", env={"COLUMNS": "80"})
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines), result.out
    assert lines[0].split()[0] == "ID" and lines[0].split()[-1] == "DURATION"  # every column, on one line
    for token in key_values(result.out):
        assert token in WHOLE, token  # never `iterations=20`, `test_acc=0`
    assert "…" in lines[1]  # items left out are said to be
    assert "\x1b" not in result.out  # run text stays printable


@pytest.mark.usefixtures("history")
def test_runs_list_uses_a_wide_terminal(cli):
    result = cli("runs", "list", env={"COLUMNS": "160"})
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert all(len(line) <= 160 for line in lines)
    row = next(line for line in lines if line.startswith("run00000"))
    assert "a-rather-long-project-name/sweep" in row
    assert "lr=0.001 iterations=2000 batch_size=40000 momentum=0.9" in row
    assert "test_acc=0.9556 loss=0.125" in row and "…" not in row
    assert "note=a\\x1b[2Jb" in result.out and "\x1b" not in result.out


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize("args, message", [
    (("--status", "failed"), "no run matches --status failed"),
    (("--project", "nope"), "no run matches --project nope"),
    (("--experiment", "nope"), "no run matches --experiment nope"),
    (("--project", "mnist", "--experiment", "nope"), "no run matches --project mnist --experiment nope"),
])
def test_an_empty_filter_says_no_run_matches(cli, args, message):
    result = cli("runs", "list", *args)
    assert result.code == 0 and result.out == ""
    assert message in result.err and "no runs yet" not in result.err


def test_an_empty_history_says_no_runs_yet(cli):
    result = cli("runs", "list")
    assert result.code == 0 and "no runs yet" in result.err
    assert "no runs yet" not in cli("runs", "list", "--status", "failed").err
