"""The CI tests' fixtures: real git repositories (git_projects.py)."""

from __future__ import annotations

import pytest

from git_projects import GitProject


@pytest.fixture
def git_project(tmp_path) -> GitProject:
    return GitProject(tmp_path / "repo")
