"""Shared fixtures: an isolated data dir per test, the real Docker engine, and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_projects"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skips locally when infrastructure is missing; under CI=true a missing piece is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}: .ci/infra.sh should have provided it")
    pytest.skip(reason)


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


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


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


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.code == 1, (result.code, result.out, result.err)
    lines = [l for l in result.err.splitlines() if l.strip()]
    error_lines = [l for l in lines if l.startswith("workbench: error:")]
    assert len(error_lines) == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in error_lines[0], (needle, error_lines[0])


def wait_for(predicate, timeout: float = 30, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
