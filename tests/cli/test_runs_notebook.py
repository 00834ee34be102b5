"""Issue 24: `workbench runs notebook ID` prints a notebook run's executed notebook: plain text into a pipe,
through the pager on a terminal (PAGER honoured, LESS defaulted so colours show), straight with --no-pager;
what keeps it from being shown (a command run, a run with no notebook yet, a damaged file, a bad id) is one
line and exit 1."""

from __future__ import annotations

import pytest

from helpers import assert_one_line_error
from notebook_fixture import add_notebook_run, executed_notebook
from workbench.services import Workbench

NOW = 1_795_000_000.0


@pytest.fixture
def recorded(home):
    """A data dir holding notebook runs (finished with its notebook, running without one yet, on a remote
    host, a damaged file) and a command run."""
    wb = Workbench()
    add_notebook_run(wb, "nbdone01", created=NOW, notebook=executed_notebook())
    add_notebook_run(wb, "nbwait01", status="running", created=NOW)
    add_notebook_run(wb, "nbhost01", status="running", machine="gpu-a", created=NOW)
    add_notebook_run(wb, "nbgone01", status="failed", created=NOW)
    add_notebook_run(wb, "nbbad001", created=NOW, notebook='{"cells": [')
    wb._services.store.insert_run({"id": "cmdrun01", "project": "p", "project_path": "/p", "experiment": "e",
                                   "status": "succeeded", "machine": "local", "executor": "process",
                                   "created_at": NOW, "params": {}, "spec": {"name": "e", "command": ["true"]}})
    wb.close()
    return home


def pager_script(tmp_path):
    """A pager that keeps what it was given, and the LESS it saw."""
    script = tmp_path / "pager.sh"
    script.write_text(f'#!/bin/sh\necho "LESS=$LESS" > {tmp_path}/less.txt\ncat > {tmp_path}/paged.txt\n')
    script.chmod(0o755)
    return str(script)


def test_into_a_pipe_it_prints_plain_text(cli, recorded):
    result = cli("runs", "notebook", "nbdone")  # a unique prefix, as every runs command takes
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    out_file = recorded / "runs" / "nbdone01" / "out" / "train.ipynb"
    assert f"[image/png 64x48, 162 B — open {out_file}#cell-4]" in lines  # one line, however long
    for expected in ("In [3]:", "epoch 1 loss 0.50", "warning: slow disk", "Out[3]:", "… 50 more lines",
                     "ValueError: lr too high"):
        assert expected in lines, expected
    assert "\x1b" not in result.out and result.err == ""


def test_on_a_terminal_it_pages_with_colours(tty_cli, recorded, tmp_path):
    result = tty_cli("runs", "notebook", "nbdone01", typed="", env={"PAGER": pager_script(tmp_path)})
    assert result.code == 0, result.out
    paged = (tmp_path / "paged.txt").read_text()
    assert "\x1b[" in paged and "Traceback (most recent call last)" in paged and "#cell-4]" in paged
    assert (tmp_path / "less.txt").read_text().strip() == "LESS=FRX"
    assert "In [3]" not in result.out  # the pager showed it, not the command


def test_the_users_less_settings_are_kept(tty_cli, recorded, tmp_path):
    result = tty_cli("runs", "notebook", "nbdone01", typed="", env={"PAGER": pager_script(tmp_path), "LESS": "-R"})
    assert result.code == 0, result.out
    assert (tmp_path / "less.txt").read_text().strip() == "LESS=-R"


def test_no_pager_prints_on_the_terminal_in_colour(tty_cli, recorded, tmp_path):
    result = tty_cli("runs", "notebook", "nbdone01", "--no-pager", typed="", env={"PAGER": pager_script(tmp_path)})
    assert result.code == 0, result.out
    assert "In [3]:" in result.out and "\x1b[" in result.out
    assert not (tmp_path / "paged.txt").exists()


@pytest.mark.parametrize("ref, needles", [
    ("cmdrun01", ("run cmdrun01 ran a command, not a notebook",)),
    ("nbwait01", ("run nbwait01 has not finished its first cell yet",)),
    ("nbhost01", ("run nbhost01 runs on gpu-a: its executed notebook comes back when it ends",)),
    ("nbgone01", ("run nbgone01 left no executed notebook",)),
    ("nbbad001", ("train.ipynb is not a valid notebook (not JSON",)),
    ("zz", ("no run 'zz'",)),
])
def test_what_keeps_it_from_showing_is_one_line(cli, recorded, ref, needles):
    assert_one_line_error(cli("runs", "notebook", ref), *needles)


def test_into_a_pipe_a_long_code_line_is_left_whole(cli, home):
    wb = Workbench()
    nb = executed_notebook()
    line = "x_tr, y_tr, x_te, y_te = " + ", ".join(f"data[{i}:{i + 1}]" for i in range(30))
    nb["cells"][1]["source"] = line
    add_notebook_run(wb, "nblong01", created=NOW, notebook=nb)
    wb.close()
    result = cli("runs", "notebook", "nblong01")
    assert result.code == 0, result.err
    assert len(line) > 200 and line in result.out.splitlines()
