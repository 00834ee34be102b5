"""Issue 24: a notebook as an experiment. Real runs of real notebooks (nbclient and ipykernel in the host's
Python for the process backend; in the runner image for Docker): params injected, the cell running now as the
live progress line, a failing cell as the run's reason, the executed notebook kept, metrics through workbench_log."""

from __future__ import annotations

import json
import re
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import wait_for
from workbench.services import Workbench

SPEC = """
[project]
name = "nb"
[experiments.nb]
image = "python:3.11-slim"
notebook = "analysis.ipynb"
params = {{ lr = 0.5, epochs = 3, tag = "base" }}
{extra}
"""


def notebook(*cells, params_cell: str | None = "lr = 0.1\nepochs = 1\ntag = 'x'") -> str:
    body = [new_markdown_cell("# A study")]
    if params_cell is not None:
        body.append(new_code_cell(params_cell, metadata={"tags": ["parameters"]}))
    body += [new_code_cell(c) for c in cells]
    return nbformat.writes(new_notebook(cells=body, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                             "display_name": "Python 3"}}))


TRAIN = ("from workbench_log import log\n"
         "for step in range(epochs):\n    log(step=step, loss=lr / (step + 1))\n"
         "print(f'lr={lr!r} epochs={epochs!r} tag={tag!r} types={type(lr).__name__},{type(epochs).__name__}')")


def _run(cli, root, *args):
    done = cli("run", str(root), "--executor", "process", "--json", *args)
    assert done.code == 0, done.err
    return done.json()["id"]


def _ended(wb, run_id, timeout=90):
    return wait_for(lambda: (r := wb.run(run_id)).status not in ("queued", "running") and r, timeout=timeout)


def test_a_notebook_runs_with_typed_params_metrics_and_its_executed_copy(cli, make_project, home):
    root = make_project(SPEC.format(extra=""), {"analysis.ipynb": notebook(TRAIN, "'done'")})
    run_id = _run(cli, root, "-p", "lr=0.25")
    wb = Workbench()
    run = _ended(wb, run_id)
    logs = cli("runs", "logs", run_id).out
    assert run.status == "succeeded", (run.status_reason, logs)
    assert "lr=0.25 epochs=3 tag='base' types=float,int" in logs  # injected after the parameters cell, typed
    assert re.search(r"\[workbench\] cell 1/4: lr = 0\.1", logs)  # the parameters cell, then the injected one
    assert "[workbench] cell 2/4: # Parameters" in logs and "[workbench] cell 4/4: 'done'" in logs
    assert [v for _, v in wb._services.store.metric_history(run.seq, "loss")] == [0.25, 0.125, 0.25 / 3]
    executed = home / "runs" / run_id / "out" / "analysis.ipynb"
    nb = nbformat.read(executed, as_version=4)
    injected = nb.cells[2]
    assert "injected-parameters" in injected.metadata.tags and "lr = 0.25" in injected.source
    assert nb.cells[3].outputs[0]["text"].startswith("lr=0.25")
    assert any(a["path"] == "analysis.ipynb" for a in cli("runs", "show", run_id, "--json").json()["artifacts"])


def test_a_failing_cell_fails_the_run_naming_the_cell_and_the_exception(cli, make_project, home):
    root = make_project(SPEC.format(extra=""), {"analysis.ipynb": notebook("x = 1\ny = x / 0", "print('never')")})
    run_id = _run(cli, root)
    run = _ended(Workbench(), run_id)
    assert run.status == "failed"
    assert run.status_reason == "notebook failed at cell 3/4 (x = 1): ZeroDivisionError: division by zero"
    assert "Traceback" in cli("runs", "logs", run_id).out or "ZeroDivisionError" in cli("runs", "logs", run_id).out
    kept = nbformat.read(home / "runs" / run_id / "out" / "analysis.ipynb", as_version=4)
    assert kept.cells[4].outputs == [] and kept.cells[3].outputs[-1]["ename"] == "ZeroDivisionError"


def test_a_dying_kernel_fails_the_run_as_such(cli, make_project):
    root = make_project(SPEC.format(extra=""), {"analysis.ipynb": notebook("import os\nos._exit(3)")})
    run = _ended(Workbench(), _run(cli, root))
    assert run.status == "failed" and "kernel died" in run.status_reason, run.status_reason
    assert run.status_reason.startswith("notebook failed at cell 3/3 (import os)")


def test_the_live_progress_line_names_the_cell_running_now(cli, make_project):
    slow = "import time\nfor i in range(30):\n    time.sleep(0.2)"
    root = make_project(SPEC.format(extra=""), {"analysis.ipynb": notebook("a = 1", slow, "b = 2")})
    run_id = _run(cli, root)
    wb = Workbench()
    seen = wait_for(lambda: (line := wb.progress_line(run_id)) and line.startswith("cell 4/5") and line, timeout=60)
    assert seen == "cell 4/5: import time"
    assert _ended(wb, run_id).status == "succeeded"
    assert wb.progress_line(run_id) is None


def test_a_notebook_without_a_parameters_cell_gets_them_first_said_once(cli, make_project):
    root = make_project(SPEC.format(extra=""), {"analysis.ipynb": notebook(
        "print(f'{lr} {epochs}')", params_cell=None)})
    wb = Workbench()
    first, second = _run(cli, root), _run(cli, root)
    for run_id in (first, second):
        assert _ended(wb, run_id).status == "succeeded"
    assert "0.5 3" in cli("runs", "logs", first).out
    said = [e for r in (first, second) for e in cli("runs", "show", r, "--json").json()["events"]
            if "no cell tagged \"parameters\"" in e["message"]]
    assert len(said) == 1 and said[0]["kind"] == "warning"


def test_a_param_the_notebook_does_not_declare_is_warned_and_injected(cli, make_project):
    root = make_project(SPEC.format(extra=""), {"analysis.ipynb": notebook(
        "print(tag, lr)", params_cell="lr = 0.1\nepochs = 2")})
    run_id = _run(cli, root)
    assert _ended(Workbench(), run_id).status == "succeeded"
    events = cli("runs", "show", run_id, "--json").json()["events"]
    assert any("does not set tag: injected all the same" in e["message"] for e in events)
    assert "base 0.5" in cli("runs", "logs", run_id).out


@pytest.mark.parametrize("content, said", [
    ("{not json", "analysis.ipynb is not a valid notebook"),
    (json.dumps({"cells": "no", "nbformat": 4, "nbformat_minor": 5, "metadata": {}}), "analysis.ipynb is not a valid notebook"),
])
def test_a_broken_notebook_is_refused_before_anything_is_recorded(cli, make_project, content, said):
    root = make_project(SPEC.format(extra=""), {"analysis.ipynb": content})
    done = cli("run", str(root), "--executor", "process")
    assert done.code != 0 and said in done.err and "Traceback" not in done.err
    assert len(done.err.strip().splitlines()) <= 2  # the error, and maybe its hint
    assert cli("runs", "list", "--json").json() == []


def test_the_spec_refuses_a_notebook_with_a_command_or_a_missing_file(cli, make_project):
    both = make_project(SPEC.format(extra='command = ["true"]'), {"analysis.ipynb": notebook("1")})
    done = cli("run", str(both), "--executor", "process")
    assert done.code != 0 and "set `command` or `notebook`, not both" in done.err
    missing = make_project(SPEC.format(extra=""))
    done = cli("run", str(missing), "--executor", "process")
    assert done.code != 0 and "analysis.ipynb does not exist" in done.err


def test_a_sweep_of_a_broken_notebook_is_refused_before_anything_is_recorded(cli, make_project):
    root = make_project(SPEC.format(extra="[experiments.nb.sweep]\nlr = [0.1, 0.2]"), {"analysis.ipynb": "{not json"})
    done = cli("sweep", str(root), "--executor", "process")
    assert done.code == 1 and "analysis.ipynb is not a valid notebook" in done.err and "Traceback" not in done.err
    assert cli("sweeps", "list", "--json").json() == [] and cli("runs", "list", "--json").json() == []


def test_a_failure_line_the_notebook_prints_itself_is_not_taken_for_the_runners(cli, make_project):
    """A cell prints a runner-looking failure line, then the runner is killed: the reason is the kill."""
    fake = ("import os, signal\nprint('[workbench] notebook failed at cell 9/9 (fake): NotMine: no', flush=True)\n"
            "os.kill(os.getppid(), signal.SIGKILL)")
    root = make_project(SPEC.format(extra=""), {"analysis.ipynb": notebook(fake)})
    run = _ended(Workbench(), _run(cli, root))
    assert run.status == "failed" and "NotMine" not in run.status_reason, run.status_reason
    assert "SIGKILL" in run.status_reason or run.exit_code == 137, (run.status_reason, run.exit_code)


def test_a_notebook_run_is_rerun_with_its_params(cli, make_project, home):
    root = make_project(SPEC.format(extra=""), {"analysis.ipynb": notebook(TRAIN)})
    first = _run(cli, root, "-p", "lr=0.125")
    assert _ended(Workbench(), first).status == "succeeded"
    again = cli("runs", "rerun", first, "--wait", "--json")
    assert again.code == 0, again.err
    rerun = again.json()
    assert rerun["status"] == "succeeded" and rerun["params"]["lr"] == 0.125
    nb = nbformat.read(home / "runs" / rerun["id"] / "out" / "analysis.ipynb", as_version=4)
    assert "lr = 0.125" in nb.cells[2].source and nb.cells[3].outputs[0]["text"].startswith("lr=0.125")
