"""Recovering from a failed Dockerfile build (its output kept as the run's log, advice that works), and `gc`
removing the images of superseded builds, against the real Docker engine."""

from __future__ import annotations

import io
import re
import secrets
from pathlib import Path

import pytest

from helpers import assert_one_line_error


def _dockerfile_project(make_project, dockerfile: str, name: str) -> Path:
    spec = f'[project]\nname = "{name}"\n[experiments.t]\ndockerfile = "Dockerfile"\ncommand = ["cat", "/v"]\n'
    return make_project(spec, {"Dockerfile": dockerfile}, name=name)


def _remove_repository(client, repository: str) -> None:
    for image in client.images.list(name=repository):
        try:
            client.images.remove(image.id, force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


def _remove_dangling_steps(client, build_output: str) -> None:
    """The cached steps a failed build leaves (untagged images named by its ` ---> ID` lines)."""
    for image_id in re.findall(r"---> ([0-9a-f]{12})$", build_output, re.M):
        try:
            if not client.images.get(image_id).tags:
                client.images.remove(image_id)
        except Exception:  # noqa: BLE001 - gone, or a base image others use
            pass


def test_a_failed_build_is_the_runs_log_and_the_advice_works(cli, make_project, home, docker_client):
    root = _dockerfile_project(make_project, "FROM busybox:latest\nRUN echo preparing the image\nRUN exit 3\n",
                               f"broken-{secrets.token_hex(3)}")
    result = cli("run", str(root), "--wait")
    assert_one_line_error(result, "building Dockerfile failed at step 3 (RUN exit 3)", "non-zero code: 3",
                          "workbench runs logs")
    [run] = cli("runs", "list", "--json").json()
    assert run["status"] == "failed" and "step 3 (RUN exit 3)" in run["status_reason"]
    error = next(line for line in result.err.splitlines() if line.startswith("workbench: error:"))
    assert f"workbench runs logs {run['id']}" in error

    logs = cli("runs", "logs", run["id"])
    assert logs.code == 0, logs.err
    _remove_dangling_steps(docker_client, logs.out)
    for needle in ("Step 2/", " : RUN echo preparing the image", "preparing the image", "Step 3/", " : RUN exit 3",
                   "returned a non-zero code: 3"):
        assert needle in logs.out, (needle, logs.out)
    stored = (home / "runs" / run["id"] / "logs.txt").read_text().splitlines()
    assert stored and all(line.split(" ", 2)[1] in ("out", "err") for line in stored)
    assert stored[-1].split(" ", 2)[1] == "err" and "non-zero code: 3" in stored[-1]
    # Ingestion never touches it (no container): reading it again through reconcile keeps every line.
    assert cli("runs", "logs", run["id"]).out == logs.out

    rerun = cli("runs", "rerun", run["id"])
    assert_one_line_error(rerun, f"run {run['id']} never got an image", "fix the Dockerfile",
                          f"workbench run {root}")
    assert "--executor process" not in rerun.err


@pytest.mark.usefixtures("docker_client")
def test_a_successful_build_keeps_its_output_with_the_run(cli, make_project, home, docker_client):
    name = f"built-{secrets.token_hex(3)}"
    root = _dockerfile_project(make_project, "FROM busybox:latest\nRUN echo v1 > /v\n", name)
    try:
        result = cli("run", str(root), "--wait", "--json")
        assert result.code == 0, result.err
        run = cli("runs", "show", result.json()["id"], "--json").json()
        build_log = Path(run["run_dir"]) / "build.log"
        assert "Step 2/" in build_log.read_text() and " : RUN echo v1 > /v" in build_log.read_text()
        assert any(e["kind"] == "build" and "build.log" in e["message"] for e in run["events"]), run["events"]
        logs = cli("runs", "logs", run["id"]).out
        assert logs.strip() == "v1"  # the run's own output; the build's is in build.log
    finally:
        _remove_repository(docker_client, f"workbench/{name}")


def test_gc_removes_the_images_of_superseded_builds(cli, make_project, docker_client):
    import docker.errors

    name = f"gcimg-{secrets.token_hex(3)}"
    repository = f"workbench/{name}"
    # Not built by this Workbench (another data dir, or the user), though its tag looks like ours: never removed.
    foreign_tag = f"{repository}:{secrets.token_hex(8)}"
    docker_client.images.build(fileobj=io.BytesIO(f"FROM busybox:latest\nRUN echo {name} > /f\n".encode()),
                               tag=foreign_tag, rm=True)
    busybox = docker_client.images.get("busybox:latest").id
    root = _dockerfile_project(make_project, "FROM busybox:latest\nRUN head -c 300000 /dev/urandom > /blob && "
                                             "echo v1 > /v\n", name)
    try:
        first = cli("run", str(root), "--wait", "--json")
        assert first.code == 0, first.err
        (root / "Dockerfile").write_text("FROM busybox:latest\nRUN echo v2 > /v\n")
        second = cli("run", str(root), "--wait", "--json")
        assert second.code == 0, second.err
        old = cli("runs", "show", first.json()["id"], "--json").json()["image_id"]
        new = cli("runs", "show", second.json()["id"], "--json").json()["image_id"]
        assert old != new

        gc = cli("gc", "--json")
        assert gc.code == 0, gc.err
        report = gc.json()
        assert report["images_removed"] == 1, report
        # What the removed image alone held (its 300 kB layer), not the busybox base it shares (about 2 MB).
        assert 300_000 <= report["bytes_freed"] < 1_000_000, report
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(old)
        assert docker_client.images.get(new).id == new  # the newest run's image stays
        assert docker_client.images.get(foreign_tag)
        assert docker_client.images.get("busybox:latest").id == busybox
        assert cli("gc", "--json").json()["images_removed"] == 0  # nothing more to do

        # The first run's image is gone: a rerun rebuilds it from the stored snapshot (not the folder as it is).
        rerun = cli("runs", "rerun", first.json()["id"], "--wait")
        assert rerun.code == 0, rerun.err
        assert "rebuilding it from the run's snapshot" in rerun.err
        assert "v1" in rerun.out
    finally:
        _remove_repository(docker_client, repository)


def test_gc_without_an_engine_still_reclaims_files(cli, make_project):
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    gc = cli("gc", "--json", env=env)
    assert gc.code == 0, gc.err
    report = gc.json()
    assert report["images_removed"] == 0
    assert any("no Docker engine" in note and "images" in note for note in report["notes"]), report
    plain = cli("gc", env=env)
    assert plain.code == 0 and "images" in plain.err and "Traceback" not in plain.err
