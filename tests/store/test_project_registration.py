"""Issue 22 item 19: a run launched from the CLI registers its project folder (the Projects screen and
`projects list` show it), once however often the folder is launched, and a refused launch registers
nothing."""

from __future__ import annotations

SPEC = """
[project]
name = "{name}"
[experiments.train]
image = "python:3.11-slim"
command = ["python3", "-c", "print('hello')"]
params = {{ lr = 0.1 }}
"""


def _listed(cli) -> list[dict]:
    listed = cli("projects", "list", "--json")
    assert listed.code == 0, listed.err
    return listed.json()


def test_a_launched_folder_is_registered_once_and_a_refused_launch_registers_nothing(cli, make_project):
    root = make_project(SPEC.format(name="charmodel"))
    assert _listed(cli) == []
    for _ in range(2):
        ran = cli("run", str(root), "--executor", "process", "--wait", "--json")
        assert ran.code == 0, ran.err
    listed = _listed(cli)
    assert [(p["name"], p["path"]) for p in listed] == [("charmodel", str(root))]
    assert listed[0]["experiments"] == ["train"]

    refused = make_project(SPEC.format(name="other"))
    bad = cli("run", str(refused), "--executor", "process", "-p", "nope=1")
    assert bad.code != 0 and "Traceback" not in bad.err
    assert [p["name"] for p in _listed(cli)] == ["charmodel"]

    # a second folder under a registered name runs, and leaves the registered folder as it was
    twin = make_project(SPEC.format(name="charmodel"))
    ran = cli("run", str(twin), "--executor", "process", "--wait", "--json")
    assert ran.code == 0, ran.err
    assert [(p["name"], p["path"]) for p in _listed(cli)] == [("charmodel", str(root))]


def test_a_sweep_launched_from_a_folder_registers_it(cli, make_project):
    root = make_project(SPEC.format(name="swept") + "[experiments.train.sweep]\nlr = [0.1, 0.2]\n")
    started = cli("sweep", str(root), "--json")
    assert started.code == 0, started.err
    cancelled = cli("sweeps", "cancel", started.json()["id"])
    assert cancelled.code == 0, cancelled.err
    assert [(p["name"], p["path"]) for p in _listed(cli)] == [("swept", str(root))]


def test_a_rerun_never_registers_again_a_project_removed_or_whose_folder_is_gone(cli, make_project):
    import shutil

    root = make_project(SPEC.format(name="gone"))
    ran = cli("run", str(root), "--executor", "process", "--wait", "--json")
    assert ran.code == 0, ran.err
    assert cli("projects", "remove", "gone").code == 0
    shutil.rmtree(root)
    rerun = cli("runs", "rerun", ran.json()["id"], "--wait", "--json")  # from the run's snapshot
    assert rerun.code == 0, rerun.err
    assert _listed(cli) == []
