"""The model registry (issue 12): register a real run's artifact as version N (content-addressed, with
lineage), the checks gate, resolve NAME / NAME:V / NAME@ALIAS, aliases with their append-only history, and
each bad input as one clear line with nothing recorded lost."""

from __future__ import annotations

import hashlib
import os

from helpers import assert_one_line_error

SPEC = """
[experiments.train]
image = "python:3.11-slim"
command = ["python3", "train.py", "{seed}", "{acc}"]
params = { seed = 1, acc = 0.9 }
artifacts = ["model.bin"]
[experiments.train.checks]
acc = ">= 0.5"
"""
TRAIN = """
import json, os, sys
with open(os.path.join(os.environ["WORKBENCH_OUTPUT"], "model.bin"), "w") as fh:
    fh.write("weights-" + sys.argv[1])
with open(os.environ["WORKBENCH_METRICS"], "a") as fh:
    fh.write(json.dumps({"acc": float(sys.argv[2])}) + "\\n")
"""


def project(make_project):
    return make_project(SPEC, {"train.py": TRAIN})


def trained(cli, root, seed: int, acc: float) -> str:
    done = cli("run", str(root), "--executor", "process", "--wait", "--json", "-p", f"seed={seed}", "-p", f"acc={acc}")
    assert done.code == 0, done.err
    return done.json()["id"]


def test_register_resolve_alias_and_lineage(cli, make_project, home):
    root = project(make_project)
    first = trained(cli, root, 1, 0.8)
    second = trained(cli, root, 2, 0.95)
    v1 = cli("models", "register", first, "model.bin", "--name", "digits", "--json")
    assert v1.code == 0, v1.err
    v1 = v1.json()
    assert v1["version"] == 1 and v1["sha256"] == hashlib.sha256(b"weights-1").hexdigest()
    assert v1["lineage"]["run"] == first and v1["lineage"]["params"] == {"seed": 1, "acc": 0.8}
    assert v1["lineage"]["metrics"]["acc"] == 0.8 and v1["lineage"]["verdict"] == "pass"
    assert (home / "models" / v1["sha256"]).read_bytes() == b"weights-1"  # content-addressed copy
    v2 = cli("models", "register", second, "model.bin", "--name", "digits", "--json").json()
    assert v2["version"] == 2
    again = cli("models", "register", first, "model.bin", "--name", "digits", "--json").json()
    assert again["version"] == 3 and again["sha256"] == v1["sha256"]  # same file: stored once
    assert len(list((home / "models").iterdir())) == 2

    assert cli("models", "alias", "digits", "2", "production").code == 0
    moved = cli("models", "alias", "digits", "1", "production", "--json").json()
    assert moved == {"name": "digits", "alias": "production", "version": 1, "previous": 2}
    assert cli("models", "show", "digits@production", "--json").json()["version"] == 1
    assert cli("models", "show", "digits:2", "--json").json()["lineage"]["run"] == second
    whole = cli("models", "show", "digits", "--json").json()
    assert [v["version"] for v in whole["versions"]] == [1, 2, 3]
    assert [(h["alias"], h["previous"], h["version"]) for h in whole["alias_history"]] == [
        ("production", None, 2), ("production", 2, 1)]  # append-only: every move kept
    listed = cli("models", "list")
    assert "digits" in listed.out and "3 version(s)" in listed.out and "@production→1" in listed.out
    text = cli("models", "show", "digits:1")
    assert f"from run   {first}" in text.out and "checks     pass" in text.out


def test_the_checks_gate_and_bad_input(cli, make_project, home):
    root = project(make_project)
    good = trained(cli, root, 1, 0.9)
    bad = trained(cli, root, 2, 0.1)  # fails its check acc >= 0.5
    assert_one_line_error(cli("models", "register", bad, "model.bin", "--name", "m"), "failed its checks")
    forced = cli("models", "register", bad, "model.bin", "--name", "m", "--force", "--json")
    assert forced.code == 0 and forced.json()["forced"] is True
    assert_one_line_error(cli("models", "register", good, "nope.bin", "--name", "m"), "has no artifact 'nope.bin'",
                          "model.bin")
    assert_one_line_error(cli("models", "register", "zzzz", "model.bin", "--name", "m"), "no run")
    assert_one_line_error(cli("models", "register", good, "model.bin", "--name", "bad name!"), "model name")
    assert_one_line_error(cli("models", "show", "ghost"), "no model 'ghost'")
    assert_one_line_error(cli("models", "show", "m:7"), "has no version 7")
    assert_one_line_error(cli("models", "show", "m:x"), "is not a number")
    assert_one_line_error(cli("models", "show", "m@staging"), "has no alias 'staging'")
    assert_one_line_error(cli("models", "alias", "m", "9", "production"), "has no version 9")
    # the artifact's file changed since the run recorded it: refused, nothing registered
    out = home / "runs" / good / "out" / "model.bin"
    os.chmod(out, 0o644)
    out.write_text("tampered")
    assert_one_line_error(cli("models", "register", good, "model.bin", "--name", "m"), "changed since the run recorded it")
    out.unlink()
    assert_one_line_error(cli("models", "register", good, "model.bin", "--name", "m"), "is gone")
    assert [v["version"] for v in cli("models", "show", "m", "--json").json()["versions"]] == [1]


def test_a_stored_model_file_is_checked_when_used(cli, make_project, home):
    from workbench.errors import WorkbenchError
    from workbench.services import Workbench
    from workbench.services.models import model_file, resolve

    import pytest

    root = project(make_project)
    run = trained(cli, root, 1, 0.9)
    sha = cli("models", "register", run, "model.bin", "--name", "m", "--json").json()["sha256"]
    wb = Workbench()
    assert model_file(wb._services, resolve(wb._services, "m")).read_bytes() == b"weights-1"
    blob = home / "models" / sha
    os.chmod(blob, 0o644)
    blob.write_bytes(b"bitrot")
    with pytest.raises(WorkbenchError, match="no longer matches its sha256"):
        model_file(wb._services, resolve(wb._services, "m:1"))
    blob.unlink()
    with pytest.raises(WorkbenchError, match="is missing from the model store"):
        model_file(wb._services, resolve(wb._services, "m"))
    wb.close()
