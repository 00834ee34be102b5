"""The reproducibility record is honest: a git state that git cannot tell (a repository with a missing object)
is recorded as unknown with the reason, never as clean, and untracked files that went into the snapshot are
listed with the git state."""

from __future__ import annotations

import os
import subprocess

import pytest

SPEC = """
[project]
name = "gitrec"
exclude = ["data/**"]
[experiments.hi]
image = "busybox:latest"
command = ["sh", "-c", "true"]
"""


def _git(root, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture
def repo(make_project):
    root = make_project(SPEC, {"train.py": "print('v1')\n", ".gitignore": "ckpt.bin\n"})
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "one")
    return root


def _run(cli, root) -> dict:
    started = cli("run", str(root), "--executor", "process", "--wait", "--json")
    assert started.code == 0, started.err
    return cli("runs", "show", started.json()["id"], "--json").json()


def test_missing_object_is_unknown_not_clean(cli, repo):
    blob = _git(repo, "rev-parse", "HEAD:train.py")
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    (repo / "train.py").write_text("print('v2')\n")  # git diff now has to read the lost blob

    run = _run(cli, repo)
    assert run["git_commit"] == _git(repo, "rev-parse", "HEAD")
    assert run["git_dirty"] is None and run["git_diff"] is None
    warnings = [e["message"] for e in run["events"] if e["kind"] == "warning"]
    assert any(m.startswith("git state unknown: git diff failed") for m in warnings), warnings
    text = cli("runs", "show", run["id"]).out
    git_line = next(line for line in text.splitlines() if line.strip().startswith("git "))
    assert "(state unknown: git diff failed" in git_line and "dirty" not in git_line, git_line


def test_clean_and_dirty_are_still_told(cli, repo):
    clean = _run(cli, repo)
    assert clean["git_dirty"] == 0 and clean["git_diff"] is None
    assert not [e for e in clean["events"] if e["kind"] in ("git", "warning")]
    (repo / "train.py").write_text("print('v2')\n")
    dirty = _run(cli, repo)
    assert dirty["git_dirty"] == 1 and "+print('v2')" in dirty["git_diff"]


def test_untracked_files_in_the_snapshot_are_listed(cli, repo):
    (repo / "notes.py").write_text("x = 1\n")          # untracked
    (repo / "ckpt.bin").write_bytes(b"\0" * 10)        # ignored by git, but still in the snapshot
    (repo / "data").mkdir()
    (repo / "data" / "big.csv").write_text("1\n")      # excluded by the spec: not in the snapshot
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "a.pyc").write_bytes(b"x")  # never snapshotted

    run = _run(cli, repo)
    assert run["git_dirty"] == 0
    [event] = [e["message"] for e in run["events"] if e["kind"] == "git"]
    assert event == "2 untracked file(s) in the snapshot, not in the commit: ckpt.bin, notes.py", event
    git_line = next(line for line in cli("runs", "show", run["id"]).out.splitlines()
                    if line.strip().startswith("git "))
    assert "(2 untracked file(s) in the snapshot, not in the commit)" in git_line, git_line


def test_untracked_list_is_capped(repo):
    from workbench.services import UNTRACKED_LISTED, _git_state

    for i in range(UNTRACKED_LISTED + 5):
        (repo / f"u{i:03d}.txt").write_text("u")
    state = _git_state(repo, ["data/**"])
    [(kind, message)] = state["notes"]
    assert kind == "git" and message.startswith(f"{UNTRACKED_LISTED + 5} untracked file(s)")
    assert message.count(".txt") == UNTRACKED_LISTED and message.endswith(" and 5 more")
