"""The README's recipes, run as a user copies them: each block a user copies is marked in README.md by a
`<!-- recipe: NAME -->` line just above it, and is run (or, the PyTorch one, validated and its metric adapter
run on stand-in output) here, so an edit that breaks a recipe fails CI. Every `workbench` command in any
block must also parse."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import pkgutil
import re
import os
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO, free_port, wait_for
from readme_blocks import README, commands, fenced_blocks, recipe

# `runs show 3fa1`: an id a user reads off the line before; the test puts in the id it got
PLACEHOLDER_ID = re.compile(r"^[0-9a-f]{4}$")
TAKES_AN_ID = {"show", "logs", "notebook", "cancel", "rerun", "rm", "pull", "compare", "register"}


# ----------------------------------------------------------------------------------------------------------
def test_every_workbench_command_in_the_readme_parses():
    from workbench.cli import build_parser

    parser = build_parser()
    broken = []
    for _, block in fenced_blocks(README.read_text()):
        for argv in commands(block):
            with contextlib.redirect_stderr(io.StringIO()) as err:
                try:
                    parser.parse_args(argv)
                except SystemExit:
                    broken.append(f"workbench {shlex.join(argv)}: {err.getvalue().strip().splitlines()[-1]}")
    assert not broken, "\n".join(broken)


def test_config_recipe_loads_and_names_real_bindings(tmp_path):
    from textual.binding import Binding

    from workbench.config import load_config

    block = recipe("config.toml")
    (tmp_path / "config.toml").write_text(block.text)
    config = load_config(tmp_path / "config.toml")
    themes = {p.stem for p in (REPO / "workbench" / "themes").glob("*.toml")}
    assert config.theme in themes
    ids = set()
    import workbench.tui as tui

    for module in pkgutil.walk_packages(tui.__path__, "workbench.tui."):
        for value in vars(importlib.import_module(module.name)).values():
            for binding in getattr(value, "BINDINGS", []) if isinstance(value, type) else []:
                if isinstance(binding, Binding) and binding.id:
                    ids.add(binding.id)
    assert config.keymap and set(config.keymap) <= ids, set(config.keymap) - ids


def project_with(tmp_path: Path, *tables: str) -> Path:
    """The mnist-numpy sample's spec with its tables of the same names replaced by the README's fragments."""
    root = tmp_path / "mnist-numpy"
    root.mkdir()
    for item in (REPO / "sample_projects" / "mnist-numpy").iterdir():
        if item.is_file() and item.name != "workbench.toml":
            (root / item.name).write_bytes(item.read_bytes())
    sample = (REPO / "sample_projects" / "mnist-numpy" / "workbench.toml").read_text()
    replaced = {m for t in tables for m in re.findall(r"^\[([^\]]+)\]", t, re.M)}
    kept, keep = [], True
    for line in sample.splitlines():
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            keep = header[1] not in replaced
        if keep:
            kept.append(line)
    (root / "workbench.toml").write_text("\n".join(kept) + "\n" + "\n".join(tables))
    return root


def test_watch_sweep_and_spec_recipes_validate(tmp_path):
    """The spec fragments (watch with checks, a sweep) on the sample they describe, and the full spec."""
    from workbench.projects.spec import load_spec

    spec = project_with(tmp_path, recipe("watch-checks").text, recipe("sweep-spec").text)
    loaded = load_spec(spec)
    assert loaded.watch and loaded.experiments["train"].sweep and loaded.experiments["train"].checks
    full = tmp_path / "full"
    full.mkdir()
    (full / "workbench.toml").write_text(recipe("project-spec").text)
    (full / "smoke.json").write_text('{"pixels": []}')
    loaded = load_spec(full)
    assert loaded.deploy and loaded.watch and loaded.experiments["train"].checks


def run_block(cli, name: str, words: dict[str, str] | None = None) -> list[str]:
    """Runs a shell recipe's `workbench` lines in order from the repository root (where its paths are), each
    placeholder id replaced by the id of the run (or sweep) the block made last, and each of `words` by its
    value; returns those ids."""
    made: list[str] = []
    for argv in commands(recipe(name)):
        argv = [made[-1] if made and i and argv[i - 1] in TAKES_AN_ID and PLACEHOLDER_ID.match(arg) else arg
                for i, arg in enumerate(argv)]
        argv = [(words or {}).get(arg, arg) for arg in argv]
        makes = argv[0] in ("run", "sweep")
        done = cli(*argv, *(["--json"] if makes else []), cwd=REPO, timeout=300)
        assert done.code == 0, (argv, done.out[-2000:], done.err[-2000:])
        if makes:
            made.append(done.json()["id"])
    return made


def test_run_an_experiment_recipe_runs_as_written(cli, docker_client):
    made = run_block(cli, "run-an-experiment")
    runs = {r["id"]: r for r in cli("runs", "list", "--json").json()}
    assert [runs[i]["status"] for i in made] == ["succeeded"] * 3
    assert runs[made[1]]["verdict"] == runs[made[2]]["verdict"] == "pass"  # mnist-numpy: acc >= 0.9
    assert runs[made[2]]["params"] == {"lr": 0.3, "epochs": 20, "hidden": 64}


def test_notebook_recipe_runs_as_written(cli, docker_client):
    (made,) = run_block(cli, "notebook-run")
    run = cli("runs", "show", made, "--json").json()
    assert (run["status"], run["verdict"], run["params"]["lr"]) == ("succeeded", "pass", 0.3), run["status_reason"]
    shown = cli("runs", "notebook", made, "--no-pager").out
    assert "Digits MLP, in a notebook" in shown and "test accuracy" in shown


def test_sweep_recipe_runs_as_written(cli, docker_client):
    (sweep,) = run_block(cli, "sweep")  # starts, lists, shows, then cancels the sweep, as the block does
    shown = cli("sweeps", "show", sweep, "--json").json()
    assert shown["status"] == "cancelled", shown
    wait_for(lambda: all(r["status"] not in ("queued", "running")
                         for r in cli("runs", "list", "--json").json()), timeout=60, interval=0.5)


def test_queue_recipe_runs_as_written(cli, docker_client):
    made = run_block(cli, "queue")  # two runs on this workstation (the only machine), the second cancelled
    wait_for(lambda: cli("runs", "show", made[0], "--json").json()["status"] == "succeeded", timeout=120,
             interval=0.5)
    last = cli("runs", "show", made[1], "--json").json()
    # nothing queues here (a CPU run, this workstation free): the sample's run may end (in under a second)
    # before the block's `runs cancel` reaches it, which then answers that it had already ended
    assert last["status"] in ("cancelled", "succeeded"), last["status"]
    assert last["status"] == "succeeded" or any(e["kind"] == "cancelled" for e in last["events"]), last["events"]


def test_ci_bisect_recipe_runs_as_written(home, tmp_path, docker_client):
    """The CI walkthrough as a user pastes it into a shell (git and all), in a folder of its own: bisect names
    the commit that broke accuracy, the notes are in git, and the follower it started is stopped."""
    digits = tmp_path / "digits"
    script = recipe("ci-bisect").text.replace("/tmp/digits", str(digits))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "workbench").write_text(f"#!/bin/sh\nexec {sys.executable} -m workbench \"$@\"\n")
    (bin_dir / "workbench").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "WORKBENCH_HOME": str(home),
           "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org", "GIT_COMMITTER_NAME": "Ada",
           "GIT_COMMITTER_EMAIL": "ada@example.org"}
    done = subprocess.run(["bash", "-e", "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    broke = subprocess.run(["git", "log", "--format=%H", "--grep", "gentler"], cwd=digits, capture_output=True,
                           text=True).stdout.strip()
    assert f"first bad commit: {broke} tune: a gentler learning rate" in done.stdout, done.stdout
    assert "workbench: PASS acc=" in done.stdout or "workbench: FAIL acc=" in done.stdout  # the notes, in git log
    followers = subprocess.run([sys.executable, "-m", "workbench", "ci", "list", str(digits), "--json"], env=env,
                               capture_output=True, text=True).stdout
    listed = json.loads(followers)
    assert listed[-1]["verdict"] == "PASS" and listed[0]["verdict"] == "FAIL", listed
    assert "stopped following main" in done.stderr


def test_models_and_deployments_recipe_runs_as_written_on_this_machine(cli, docker_client):
    """The walkthrough "on an SSH machine gpu-a, or --machine local": here, on a free port; its curl asks the
    live version for a digit."""
    port = str(free_port())
    try:
        run_block(cli, "models-and-deployments", {"gpu-a": "local", "8080": port})
        block = recipe("models-and-deployments").text
        body = re.search(r"curl -s -d '([^']+)'", block)[1]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body.encode())
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert "digit" in json.loads(answer.read())
        shown = cli("deployments", "show", "digits", "--json").json()
        assert shown["live_version"] == 1, shown  # rolled back from v2, as the block's last switch says
    finally:
        cli("deployments", "stop", "digits", "--remove")


# The PyTorch recipe (karpathy/makemore): too large to build in CI (torch), so it is validated, and its metric
# adapter is run for real on a stand-in that prints makemore's log lines in makemore's own formats.
MAKEMORE_STAND_IN = r'''
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--input-file", "-i"); parser.add_argument("--work-dir", "-o")
parser.add_argument("--max-steps", type=int); parser.add_argument("--seed", type=int); parser.add_argument("--device")
args = parser.parse_args()
for step in range(args.max_steps):
    loss = 3.3 - step / 1000
    if step % 10 == 0:  # makemore.py, `# logging`
        print(f"step {step} | loss {loss:.4f} | step time {12.5:.2f}ms")
    if step > 0 and step % 500 == 0:  # makemore.py, `# evaluate the model`
        train_loss, test_loss = loss - 0.9, loss - 0.8
        print(f"step {step} train loss: {train_loss} test loss: {test_loss}")
        print(f"test loss {test_loss} is the best so far, saving model to {args.work_dir}/model.pt")
        open(os.path.join(args.work_dir, "model.pt"), "w").write("weights")
'''


def makemore_project(tmp_path: Path) -> Path:
    root = tmp_path / "makemore"
    root.mkdir()
    for name in ("makemore/workbench.toml", "makemore/Dockerfile", "makemore/stdout_metrics.py"):
        (root / Path(name).name).write_text(recipe(name).text)
    (root / "makemore.py").write_text(MAKEMORE_STAND_IN)
    (root / "names.txt").write_text("emma\nolivia\n")
    return root


def test_pytorch_recipe_validates_installs_what_makemore_imports_and_checks_a_metric_it_writes(cli, tmp_path,
                                                                                                docker_client):
    from workbench.projects.spec import load_spec

    root = makemore_project(tmp_path)
    experiment = load_spec(root).experiments["train"]
    assert experiment.dockerfile == "Dockerfile"
    dockerfile = (root / "Dockerfile").read_text()
    # makemore.py imports torch and torch.utils.tensorboard (which needs the tensorboard package)
    assert re.search(r"pip install\b.*\btorch\b", dockerfile) and re.search(r"\btensorboard\b", dockerfile)

    # the same spec on a plain image (the torch build is too large for CI): the adapter turns makemore's lines
    # into metrics, and every check names one of them
    spec = (root / "workbench.toml").read_text()
    (root / "workbench.toml").write_text(spec.replace('dockerfile = "Dockerfile"', 'image = "python:3.11-slim"'))
    done = cli("run", str(root), "-p", "steps=501", "--wait", "--json")
    assert done.code == 0, (done.out[-2000:], done.err[-2000:])
    shown = cli("runs", "show", done.json()["id"], "--json").json()
    checked = {c["metric"] for c in shown["checks"]}
    assert checked and checked <= set(shown["metrics"]), (checked, shown["metrics"])
    assert shown["verdict"] == "pass", shown["checks"]
    assert {"loss", "train_loss", "test_loss"} <= set(shown["metrics"])
    assert "step 500 train loss:" in cli("runs", "logs", done.json()["id"]).out
    assert any(a["path"] == "model.pt" for a in shown["artifacts"]), shown["artifacts"]


@pytest.mark.parametrize("name", ["run-an-experiment", "notebook-run", "queue", "sweep", "models-and-deployments",
                                  "makemore/Dockerfile"])
def test_each_recipe_that_builds_says_how_long_its_first_build_takes(name):
    text = README.read_text()
    after = text[text.index(f"<!-- recipe: {name} -->"):]
    section = re.split(r"\n#{2,6} ", after, maxsplit=1)[0]  # the next heading (a `# comment` in a block is not one)
    assert re.search(r"First build: [^.]*(~\d|none)", section), f"{name}: no 'First build: ~N …' before the next heading"


def test_every_recipe_marker_names_a_block_this_file_runs():
    names = {marker for marker, _ in fenced_blocks(README.read_text()) if marker}
    source = Path(__file__).read_text()
    used = {m for pair in re.findall(r'recipe\("([^"]+)"\)|run_block\(cli, "([^"]+)"\)', source) for m in pair if m}
    used |= set(re.findall(r'"(makemore/[^"]+)"', source))
    assert names == used, (names ^ used)
