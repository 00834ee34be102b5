"""Real git repositories for the CI tests, made with the git CLI: a project whose `train` experiment (busybox,
a fraction of a second) writes one metric `acc` read from its `acc.txt`, checked `acc >= 0.9`, so a commit
that writes a lower number breaks the check; `acc = "skip"` makes it exit 125 (it cannot judge its commit)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SPEC = """[project]
name = "{name}"

[experiments.train]
image = "busybox:latest"
command = ["sh", "train.sh"]
checks = {{ acc = ">= 0.9" }}
"""

TRAIN = """#!/bin/sh
acc=$(cat acc.txt)
if [ "$acc" = "skip" ]; then echo "cannot judge this commit"; exit 125; fi
echo "training, acc=$acc"
echo "{\\"step\\": 1, \\"acc\\": $acc}" >> "$WORKBENCH_METRICS"
"""

GIT_ENV = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org", "GIT_COMMITTER_NAME": "Ada",
           "GIT_COMMITTER_EMAIL": "ada@example.org"}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV},
                          timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


class GitProject:
    """A git repository whose top folder is a Workbench project (or `subdir` inside it)."""

    def __init__(self, top: Path, subdir: str = "", name: str = "ciproj") -> None:
        self.top = top
        self.path = top / subdir if subdir else top
        self.path.mkdir(parents=True, exist_ok=True)
        git(top, "init", "-q", "-b", "main")
        (self.path / "workbench.toml").write_text(SPEC.format(name=name))
        (self.path / "train.sh").write_text(TRAIN)
        (self.path / "acc.txt").write_text("0.95\n")
        self.commit("initial: acc 0.95")

    def commit(self, message: str, files: dict[str, str] | None = None, *, acc: float | str | None = None) -> str:
        """Commits `files` (relative to the project; written as given) and/or a new acc.txt; its sha."""
        for rel, text in (files or {}).items():
            (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.path / rel).write_text(text)
        if acc is not None:
            (self.path / "acc.txt").write_text(f"{acc}\n")
        git(self.top, "add", "-A")
        git(self.top, "commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return git(self.top, "rev-parse", ref)

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.top, *args, check=check)
