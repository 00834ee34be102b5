"""Shared fixtures: an isolated data dir per test, the real Docker engine, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Result, require


def pytest_collection_modifyitems(items):
    """Every test that uses the Docker engine carries the `docker` marker (`-m "not docker"` without one)."""
    for item in items:
        if "docker_client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        require(False, f"no Docker engine ({exc})")
    for image in ("busybox:latest", "python:3.11-slim"):
        try:
            client.images.get(image)
        except Exception:  # noqa: BLE001
            require(False, f"image {image} is missing")
    return client


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "wbhome"
    path.mkdir()
    monkeypatch.setenv("WORKBENCH_HOME", str(path))
    return path


@pytest.fixture
def cli(home):
    def run(*args: str, timeout: float = 240, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
        full_env = {**os.environ, "WORKBENCH_HOME": str(home), **(env or {})}
        full_env.pop("WORKBENCH_DEBUG", None)
        done = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                              timeout=timeout, env=full_env, cwd=cwd)
        return Result(done.returncode, done.stdout, done.stderr)
    return run


@pytest.fixture
def make_project(tmp_path):
    """Writes a project folder from a spec text and files; returns its path."""
    counter = {"n": 0}

    def make(spec: str, files: dict[str, str] | None = None, name: str | None = None) -> Path:
        counter["n"] += 1
        root = tmp_path / (name or f"proj{counter['n']}")
        root.mkdir()
        (root / "workbench.toml").write_text(spec)
        for rel, text in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root
    return make
