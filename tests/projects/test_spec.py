"""workbench.toml validation: every error names the file, the line and the key."""

from __future__ import annotations

import pytest

from workbench.errors import SpecError
from workbench.projects.checks import parse_check
from workbench.projects.spec import load_spec, parse_overrides, substitute
from workbench.redaction import redact_env

GOOD = """\
[project]
name = "demo"
exclude = ["data/raw/**"]

[experiments.train]
image = "python:3.11-slim"
command = ["python", "train.py", "--lr={lr}", "--epochs", "{epochs}"]
params = { lr = 0.01, epochs = 5, tag = "a", fast = false }
gpus = 0
env = { OMP_NUM_THREADS = 2 }
mounts = ["~/datasets:/data:ro"]
shm_size = "2g"
artifacts = ["model.npz"]

[experiments.train.sweep]
lr = [0.1, 0.01, 1]

[experiments.train.checks]
acc = ">= 0.9"
loss = "best < 0.5"

[watch]
run = "train"
paths = ["*.py"]
on_busy = "queue"

[deploy]
image = "python:3.11-slim"
command = ["python", "serve.py", "--model", "{model}", "--port", "{port}"]
health = "/health"
"""


def test_good_spec_loads_every_section(make_project):
    spec = load_spec(make_project(GOOD))
    exp = spec.experiment("train")
    assert spec.name == "demo" and spec.exclude == ["data/raw/**"]
    assert exp.params == {"lr": 0.01, "epochs": 5, "tag": "a", "fast": False}
    assert exp.env == {"OMP_NUM_THREADS": "2"}
    assert exp.mounts[0].target == "/data" and exp.mounts[0].read_only and exp.mounts[0].source.startswith("/")
    assert exp.sweep == {"lr": [0.1, 0.01, 1.0]}
    assert [c.text for c in exp.checks] == ["acc >= 0.9", "loss best < 0.5"]
    assert spec.watch.on_busy == "queue" and spec.deploy.health == "/health"
    assert spec.experiment(None) is exp  # the only experiment is the default


@pytest.mark.parametrize(
    "edit, line, needle",
    [
        (("gpus = 0", 'gpus = "two"'), 9, "experiments.train.gpus: expected an integer"),
        (("gpus = 0", "gpu = 1"), 9, "experiments.train.gpu: unknown key"),
        (('shm_size = "2g"', 'shm_size = "lots"'), 12, "experiments.train.shm_size"),
        (('mounts = ["~/datasets:/data:ro"]', 'mounts = ["datasets"]'), 11, "experiments.train.mounts"),
        (("lr = [0.1, 0.01, 1]", 'lr = ["fast"]'), 16, "experiments.train.sweep.lr"),
        (("lr = [0.1, 0.01, 1]", "momentum = [0.9]"), 16, "sweep.momentum: not a declared param"),
        (('acc = ">= 0.9"', 'acc = "__import__(\'os\')"'), 19, "experiments.train.checks.acc"),
        (('on_busy = "queue"', 'on_busy = "sometimes"'), 25, "watch.on_busy"),
        (('run = "train"', 'run = "nope"'), 23, "watch.run: no experiment 'nope'"),
        (('health = "/health"', "health = 5"), 30, "deploy.health"),
        (('"--lr={lr}"', '"--lr={rate}"'), 7, "uses {rate}, which is not a declared param"),
        (("[project]", "[projekt]"), 1, "projekt: unknown key"),
        (("gpus = 0", 'gpus = 0\nsetup = """module load cuda\nrm -rf /"""'), 10, "experiments.train.setup: one bash line"),
        (("gpus = 0", "gpus = 0\nsetup = 3"), 10, "experiments.train.setup"),
        (('env = { OMP_NUM_THREADS = 2 }', 'env = { OMP_NUM_THREADS = [2] }'), 10, "env.OMP_NUM_THREADS"),
        (('env = { OMP_NUM_THREADS = 2 }', 'env = { HF_TOKEN = { from_env = 3 } }'), 10,
         "experiments.train.env.HF_TOKEN.from_env: expected the name of an environment variable"),
        (('env = { OMP_NUM_THREADS = 2 }', 'env = { HF_TOKEN = { from_env = "HF TOKEN" } }'), 10,
         "env.HF_TOKEN.from_env: expected the name of an environment variable"),
        (('env = { OMP_NUM_THREADS = 2 }', 'env = { HF_TOKEN = { from_env = "HF", default = "x" } }'), 10,
         "experiments.train.env.HF_TOKEN.default: unknown key (allowed here: from_env)"),
        (('env = { OMP_NUM_THREADS = 2 }', 'env = { HF_TOKEN = { } }'), 10,
         'experiments.train.env.HF_TOKEN: expected { from_env = "VAR" }'),
        (('health = "/health"', 'health = "/health"\nenv = { HF_TOKEN = { from_env = "HF" } }'), 31,
         "deploy.env.HF_TOKEN: expected a string, got a table"),
    ],
)
def test_bad_spec_names_file_line_and_key(make_project, edit, line, needle):
    old, new = edit
    assert old in GOOD
    root = make_project(GOOD.replace(old, new, 1))
    with pytest.raises(SpecError) as caught:
        load_spec(root)
    message = str(caught.value)
    assert f"{root / 'workbench.toml'}:{line}:" in message, message
    assert needle in message
    assert "\n" not in message


def test_toml_syntax_error_has_line(make_project):
    root = make_project(GOOD.replace('name = "demo"', 'name = "demo'))
    with pytest.raises(SpecError, match=r"workbench.toml: TOML syntax error: .*line 2"):
        load_spec(root)


def test_missing_spec_and_folder(tmp_path):
    with pytest.raises(SpecError, match="workbench.toml: not found"):
        load_spec(tmp_path)
    with pytest.raises(SpecError, match="no such folder"):
        load_spec(tmp_path / "absent")


def test_image_xor_dockerfile(make_project):
    root = make_project(GOOD.replace('image = "python:3.11-slim"\ncommand', 'command', 1))
    with pytest.raises(SpecError, match="experiments.train: set exactly one of `image` or `dockerfile`"):
        load_spec(root)
    root = make_project(GOOD.replace('image = "python:3.11-slim"\ncommand', 'dockerfile = "Dockerfile"\ncommand', 1))
    with pytest.raises(SpecError, match="Dockerfile does not exist"):
        load_spec(root)


def test_unknown_experiment_lists_declared(make_project):
    spec = load_spec(make_project(GOOD))
    with pytest.raises(SpecError, match="no experiment 'eval'; it declares: train"):
        spec.experiment("eval")


def test_overrides_keep_declared_types(make_project):
    exp = load_spec(make_project(GOOD)).experiment("train")
    values = parse_overrides(exp, ["lr=1e-3", "epochs=7", "tag=x=y", "fast=true"], "spec")
    assert values == {"lr": 0.001, "epochs": 7, "tag": "x=y", "fast": True}
    assert type(values["lr"]) is float and type(values["epochs"]) is int
    with pytest.raises(SpecError, match="declares no param 'momentum'; declared: lr \\(float\\)"):
        parse_overrides(exp, ["momentum=0.9"], "spec")
    with pytest.raises(SpecError, match="expected an integer"):
        parse_overrides(exp, ["epochs=1.5"], "spec")
    with pytest.raises(SpecError, match="expected a number"):
        parse_overrides(exp, ["lr=fast"], "spec")
    with pytest.raises(SpecError, match="expected a boolean"):
        parse_overrides(exp, ["fast=maybe"], "spec")
    with pytest.raises(SpecError, match="expected NAME=VALUE"):
        parse_overrides(exp, ["lr"], "spec")


def test_substitution_keeps_each_item_one_argument():
    hostile = "; rm -rf x $(touch pwned) `id` 'q' \"d\"\nnext"
    argv = substitute(["echo", "--tag={tag}", "{tag}", "{missing}"], {"tag": hostile})
    assert argv == ["echo", f"--tag={hostile}", hostile, "{missing}"]


def test_checks_grammar():
    check = parse_check("acc", "best >= 0.9")
    assert check.on == "best" and check.value_of([0.5, 0.95, 0.7]) == 0.95 and check.passes(0.95)
    assert parse_check("loss", "< 0.5").value_of([0.9, 0.4, 0.6]) == 0.6
    assert parse_check("loss", "best < 0.5").value_of([0.9, 0.4, 0.6]) == 0.4
    for bad in ("> abc", "=> 1", "0.9", "import os", ">= 1; x", "last"):
        with pytest.raises(ValueError):
            parse_check("m", bad)


def test_secret_env_names_are_redacted():
    env = redact_env({"API_KEY": "s", "HF_TOKEN": "t", "DB_PASSWORD": "p", "OMP_NUM_THREADS": "2"})
    assert env == {"API_KEY": "***", "HF_TOKEN": "***", "DB_PASSWORD": "***", "OMP_NUM_THREADS": "2"}


def test_from_env_is_a_name_to_read_at_launch_never_a_value(make_project, monkeypatch):
    from workbench.errors import WorkbenchError
    from workbench.projects.spec import env_from_workstation, literal_secrets

    root = make_project(GOOD.replace('env = { OMP_NUM_THREADS = 2 }',
                                     'env = { OMP_NUM_THREADS = 2, HF_TOKEN = { from_env = "WB_T_HF" }, '
                                     'API_KEY = "written-here" }'))
    exp = load_spec(root).experiment("train")
    assert exp.env == {"OMP_NUM_THREADS": "2", "API_KEY": "written-here"}
    assert exp.env_from == {"HF_TOKEN": "WB_T_HF"}
    assert literal_secrets(exp) == ["API_KEY"]  # the warning's names: secret-looking, with a value in the file
    monkeypatch.delenv("WB_T_HF", raising=False)
    with pytest.raises(WorkbenchError) as missing:
        env_from_workstation(exp)
    assert "WB_T_HF" in str(missing.value) and "HF_TOKEN" in str(missing.value) and "\n" not in str(missing.value)
    monkeypatch.setenv("WB_T_HF", "a 'b' $c\nd")
    assert env_from_workstation(exp) == {"HF_TOKEN": "a 'b' $c\nd"}
