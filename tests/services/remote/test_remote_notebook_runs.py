"""Issue 24: notebook runs away from this workstation, each as its backend runs them: in a container on an SSH
host's own engine (the runner layer added there, once), as a process on an SSH host without Docker (its own
python3, Debian's nbclient and ipykernel), and as a Slurm job. The runtime is sent to the host once; the
executed notebook comes back with the run, and a failing cell is the run's reason there too."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers import require
from workbench.execution.runtime import runtime_key
from remote_hosts import cluster_up, register

pytestmark = pytest.mark.docker

SPEC = """
[project]
name = "remote-nb"
[experiments.nb]
image = "python:3.11-slim"
notebook = "study.ipynb"
params = {{ lr = 0.5 }}
{extra}
"""


def _project(make_project, *cells: str, extra: str = "") -> object:
    nb = new_notebook(cells=[new_code_cell("lr = 0.1", metadata={"tags": ["parameters"]}),
                             *(new_code_cell(c) for c in cells)],
                      metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    return make_project(SPEC.format(extra=extra), {"study.ipynb": nbformat.writes(nb)})


STUDY = ("import os, socket\nfrom workbench_log import log\nlog(step=1, lr=lr)\n"
         "print('ran on', os.environ['WORKBENCH_OUTPUT'], 'lr', lr)")


def _ran(cli, root, *args):
    done = cli("run", str(root), *args, "--wait", "--json", timeout=600)
    run = done.json()
    shown = cli("runs", "show", run["id"], "--json").json()
    return run, shown, cli("runs", "logs", run["id"]).out


@pytest.mark.parametrize("executor", ["docker", "process"])
def test_a_notebook_runs_on_an_ssh_host_and_its_executed_copy_comes_back(cli, make_project, remote_env, home,
                                                                         tmp_path, executor):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = _project(make_project, STUDY)
    run, shown, logs = _ran(cli, root, "--machine", "gpu-a", "--executor", executor, "-p", "lr=0.25")
    assert run["status"] == "succeeded", (run["status_reason"], logs)
    assert "[workbench] cell 3/3: import os, socket" in logs and "lr 0.25" in logs
    assert shown["metrics"]["lr"]["points"] == 1
    executed = nbformat.read(home / "runs" / run["id"] / "out" / "study.ipynb", as_version=4)  # copied back
    assert "lr = 0.25" in executed.cells[1].source
    lib = tmp_path / "host" / "lib"
    assert [p.name for p in lib.iterdir()] and all((p / "workbench_nbrun.py").is_file() for p in lib.iterdir())
    if executor == "docker":  # the runner layer was added on the host's engine, and the run says so
        assert any("notebook-runner" in e["message"] for e in shown["events"] if e["kind"] == "image")
        assert "ran on /wb/out" in logs
    else:
        assert f"ran on {tmp_path / 'host'}" in logs


def test_a_failing_cell_on_an_ssh_host_is_the_runs_reason(cli, make_project, remote_env, tmp_path):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = _project(make_project, "import json\njson.loads('{')")
    run, _, logs = _ran(cli, root, "--machine", "gpu-a", "--executor", "process")
    assert run["status"] == "failed"
    assert run["status_reason"].startswith("notebook failed at cell 3/3 (import json): JSONDecodeError: "), logs


def test_a_notebook_runs_as_a_slurm_job(cli, make_project, remote_env, home, tmp_path):
    require(cluster_up(), "no Slurm cluster answers (sinfo): .ci/slurm.sh starts one")
    added = cli("machines", "add", "hpc", "--slurm", remote_env.gpu.ssh, "--identity", str(remote_env.user_key),
                "--dir", str(tmp_path / "shared"), "--poll", "1", "--time", "00:10:00")
    assert added.code == 0, added.err
    assert cli("machines", "trust", "hpc", "--fingerprint", remote_env.gpu.fingerprint).code == 0
    # a setup line that sets PYTHONPATH: the runtime still comes first (the runner and workbench_log load)
    root = _project(make_project, STUDY, "print('pythonpath', os.environ['PYTHONPATH'])",
                    extra='setup = "export PYTHONPATH=/x"')
    run, shown, logs = _ran(cli, root, "--machine", "hpc", "-p", "lr=0.125")
    assert run["status"] == "succeeded", (run["status_reason"], logs)
    assert "lr 0.125" in logs and shown["metrics"]["lr"]["points"] == 1
    assert f"pythonpath {tmp_path / 'shared' / 'lib' / runtime_key()}:/x" in logs
    assert (home / "runs" / run["id"] / "out" / "study.ipynb").is_file()
