"""Images: a real pull with progress from a registry on loopback, and a project Dockerfile built for real."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time

import pytest

from helpers import IN_CI, SAMPLES, require, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, docker_client):
    binary = shutil.which("docker-registry")
    require(binary is not None, "Debian's docker-registry is not installed")
    port = _free_port()
    root = tmp_path_factory.mktemp("registry")
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_for(up, timeout=20)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_pull_with_progress_from_a_registry(cli, make_project, registry, docker_client):
    ref = f"{registry}/demo/busybox:1"
    import io
    unique = f"FROM busybox:latest\nRUN echo {time.time_ns()} > /stamp\n".encode()
    docker_client.images.build(fileobj=io.BytesIO(unique), tag=ref, rm=True)
    for _ in docker_client.images.push(f"{registry}/demo/busybox", tag="1", stream=True, decode=True):
        pass
    docker_client.images.remove(ref)
    root = make_project(f'[experiments.x]\nimage = "{ref}"\ncommand = ["echo", "pulled"]\n')
    result = cli("run", str(root), "--wait")
    assert result.code == 0, result.err
    assert f"image {ref} is not on this engine; pulling it" in result.err
    assert "Pull complete" in result.err or "Download complete" in result.err
    assert "pulled" in result.out
    docker_client.images.remove(ref, force=True)


def test_mnist_sample_builds_its_dockerfile_and_learns(cli, docker_client):
    """The sample's Dockerfile (FROM python:3.11-slim, pip install numpy) is built by the real engine."""
    for image in docker_client.images.list(name="workbench/mnist-numpy"):
        docker_client.images.remove(image.id, force=True)  # a build every time, even on a warm machine
    result = cli("run", str(SAMPLES / "mnist-numpy"), "--wait", "--json", timeout=600)
    assert result.code == 0, result.err
    # built, or (its steps cached by an image of the same Dockerfile elsewhere on this engine) one line
    assert "building Dockerfile as workbench/mnist-numpy:" in result.err or \
        re.search(r"^image workbench/mnist-numpy:[0-9a-f]{16}: up to date", result.err, re.M), result.err
    run = cli("runs", "show", result.json()["id"], "--json").json()
    assert run["image"] == "Dockerfile" and run["image_id"].startswith("sha256:")
    assert run["metrics"]["acc"]["last"] >= 0.9
    assert [a["path"] for a in run["artifacts"]] == ["model.npz"]
    # Unchanged project: the second run reuses the snapshot and the built image (no build output).
    again = cli("run", str(SAMPLES / "mnist-numpy"), "-p", "epochs=2", "--wait", "--json", timeout=300)
    assert again.code == 0, again.err
    assert "building Dockerfile" not in again.err
