"""`{output}` and `{run_id}` in an experiment's command: accepted beside the params, reserved as param names,
and put in per executor (the run's output dir as the program sees it: /wb/out in a container)."""

from __future__ import annotations

import pytest

from helpers import assert_one_line_error

from workbench.errors import SpecError
from workbench.projects.spec import load_spec, substitute

WRITER = """
[project]
name = "placeholders"
[experiments.write]
image = "busybox:latest"
command = ["sh", "-c", "echo $1 > $2/x.txt; echo lr=$3 >> $2/x.txt", "sh", "{run_id}", "{output}", "{lr}"]
params = { lr = 0.5 }
"""


def test_builtin_placeholders_are_accepted(make_project):
    exp = load_spec(make_project(WRITER)).experiment(None)
    assert exp.command[-3:] == ["{run_id}", "{output}", "{lr}"]
    # params and the run id are put in above the executor; {output} is left for the executor
    assert substitute(exp.command, {"lr": 0.5, "run_id": "abcd1234"})[-3:] == ["abcd1234", "{output}", "0.5"]


@pytest.mark.parametrize("name", ["output", "run_id"])
def test_reserved_names_cannot_be_params(make_project, name):
    root = make_project(WRITER.replace("params = { lr = 0.5 }", f"params = {{ lr = 0.5, {name} = \"x\" }}"))
    with pytest.raises(SpecError) as err:
        load_spec(root)
    assert f"params.{name}: '{name}' is reserved" in str(err.value)
    assert "workbench.toml:7" in str(err.value)


def test_reserved_param_is_a_one_line_cli_error(make_project, cli):
    root = make_project(WRITER.replace("params = { lr = 0.5 }", "params = { output = \"out\" }"))
    assert_one_line_error(cli("run", str(root)), "params.output", "reserved", "output dir")


def test_unknown_placeholder_names_the_builtins(make_project):
    with pytest.raises(SpecError) as err:
        load_spec(make_project(WRITER.replace("{lr}", "{outdir}")))
    assert "uses {outdir}, which is not a declared param (declared: lr; built in: {output}, {run_id})" in str(err.value)


def _check_written(cli, home, root, *executor: str) -> None:
    run = cli("run", str(root), "--wait", "--json", *executor)
    assert run.code == 0, run.err
    record = run.json()
    assert record["status"] == "succeeded", record
    run_id = record["id"]
    assert (home / "runs" / run_id / "out" / "x.txt").read_text().splitlines() == [run_id, "lr=0.5"]
    # the history keeps the placeholder: the same record reruns under either executor
    shown = cli("runs", "show", run_id, "--json").json()
    assert shown["argv"][-3:] == [run_id, "{output}", "0.5"]


def test_output_and_run_id_reach_a_container(make_project, cli, home, docker_client):
    _check_written(cli, home, make_project(WRITER))


def test_output_and_run_id_reach_a_process(make_project, cli, home):
    _check_written(cli, home, make_project(WRITER), "--executor", "process")
