"""The notebook runner's image (issue 24): an image without nbclient/ipykernel gets a thin derived layer, built
once and found by one lookup after; a base that has them is only tagged; a base where they cannot be added
(no python3) is one clear error; a new base id is a new tag; two launches at once both end with the tag.
Against the real engine: python:3.11-slim lacks the runner, so `notebook_runner_image` really builds it
(once per test session, through the package index; its time is printed and kept as a test property)."""

from __future__ import annotations

import io
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest

from workbench.dirs import resolve_dirs
from workbench.errors import WorkbenchError
from workbench.execution.images import local_image_id, runs_cleanly
from workbench.services import Workbench
from workbench.services.images import RUNNER_BASE_LABEL, RUNNER_PROBE, runner_image, runner_tag

pytestmark = pytest.mark.docker

BASE = "python:3.11-slim"
# A cheap stand-in for the build path: a probe that always fails, and a "package" pip already has (no index needed)
CHEAP = {"packages": ("pip",), "probe": "raise SystemExit(1)"}


@dataclass
class RunnerImage:
    image_id: str
    tag: str
    base_id: str
    built: bool          # False when an earlier test session left it on the engine
    seconds: float
    progress: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def notebook_runner_image(docker_client, tmp_path_factory) -> RunnerImage:
    """python:3.11-slim with the notebook runner added (workbench/notebook-runner:<base id>), built at most once
    per test session; the image the notebook end-to-end tests run in."""
    base_id = docker_client.images.get(BASE).id
    tag = runner_tag("notebook", base_id)
    existed = local_image_id(docker_client, tag) is not None
    said: list[str] = []
    wb = Workbench(resolve_dirs(tmp_path_factory.mktemp("runner-home")), progress=lambda line: said.append(str(line)))
    try:
        started = time.monotonic()
        image_id = runner_image(wb._services, base_id)
        seconds = time.monotonic() - started
    finally:
        wb.close()
    print(f"\nnotebook runner image {tag}: {'built' if not existed else 'found'} in {seconds:.1f}s")
    return RunnerImage(image_id, tag, base_id, not existed, seconds, said)


@pytest.fixture
def wb(home):
    said: list[str] = []
    workbench = Workbench(progress=lambda line: said.append(str(line)))
    workbench.said = said
    yield workbench
    workbench.close()


@pytest.fixture
def purpose(docker_client):
    """A purpose of this test's own (so its tags are its own), its images removed after."""
    name = f"wbtest-{uuid.uuid4().hex[:8]}"
    yield name
    for image in docker_client.images.list(name=f"workbench/{name}-runner"):
        for tag in image.tags:
            if tag.startswith(f"workbench/{name}-runner:"):
                docker_client.api.remove_image(tag, force=True)


def _said_adding(said: list[str]) -> list[str]:
    return [line for line in said if "adding it in a thin layer, once" in line]


def test_python_slim_lacks_the_runner_and_gets_it_in_a_layer_built_once(notebook_runner_image, docker_client, wb,
                                                                        record_property):
    image = notebook_runner_image
    record_property("runner_image_seconds", round(image.seconds, 1))
    assert not runs_cleanly(docker_client, image.base_id, ["python3", "-c", RUNNER_PROBE])  # really lacks it
    assert runs_cleanly(docker_client, image.image_id, ["python3", "-c", RUNNER_PROBE])
    assert image.image_id != image.base_id
    attrs = docker_client.api.inspect_image(image.image_id)
    assert image.tag in attrs["RepoTags"]
    assert attrs["Config"]["Labels"][RUNNER_BASE_LABEL] == image.base_id
    assert attrs["Config"]["Labels"]["workbench.instance"]
    if image.built:
        assert _said_adding(image.progress) == [
            f"{BASE} lacks the notebook runner (nbclient, ipykernel): adding it in a thin layer, once: {image.tag}"]
    # the next launch (another data dir, even): one lookup, nothing said, nothing built
    started = time.monotonic()
    assert runner_image(wb._services, image.base_id) == image.image_id
    assert time.monotonic() - started < 5
    assert wb.said == []


def test_a_base_that_has_the_runner_is_tagged_not_rebuilt(notebook_runner_image, docker_client, wb):
    base = notebook_runner_image.image_id
    tag = runner_tag("notebook", base)
    assert tag != notebook_runner_image.tag
    images_before = len(docker_client.api.images(all=True))
    try:
        assert runner_image(wb._services, base) == base
        assert local_image_id(docker_client, tag) == base  # the next launch is one lookup
        assert runner_image(wb._services, base) == base
        assert wb.said == []
        assert len(docker_client.api.images(all=True)) == images_before
    finally:
        docker_client.api.remove_image(tag)  # the untag only: the image keeps its own tag


def test_a_base_without_python_is_one_clear_error(docker_client, wb, purpose):
    base = docker_client.images.get("busybox:latest").id
    with pytest.raises(WorkbenchError) as raised:
        runner_image(wb._services, base, run_id="run00001", purpose=purpose)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"busybox:latest lacks the {purpose} runner (nbclient, ipykernel) and it could not "
                              "be added to it ("), message
    assert "python3: not found) (" in message  # the shell's own words (the engine may cut its line in two)
    assert "add nbclient and ipykernel to the image; its output: `workbench runs logs run00001`" in message
    assert b"python3: not found" in (wb.dirs.run_dir("run00001") / "logs.txt").read_bytes()
    assert local_image_id(docker_client, runner_tag(purpose, base)) is None
    assert len(_said_adding(wb.said)) == 1


def test_a_package_the_index_does_not_have_is_one_clear_error(docker_client, wb, purpose):
    base = docker_client.images.get(BASE).id
    with pytest.raises(WorkbenchError) as raised:
        runner_image(wb._services, base, packages=("wbtest-no-such-package-0",), purpose=purpose)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{BASE} lacks the {purpose} runner (wbtest-no-such-package-0) and it could not be "
                              "added to it (ERROR: No matching distribution found for wbtest-no-such-package-0)"), message
    assert message.endswith("(add wbtest-no-such-package-0 to the image)")


def _labelled(docker_client, base: str, value: str) -> str:
    """A new image over `base` (one label more, and a user of its own): a base whose id changed."""
    dockerfile = io.BytesIO(f"FROM {base}\nLABEL wbtest.version={value}\nUSER nobody\n".encode())
    image, _ = docker_client.images.build(fileobj=dockerfile, rm=True)
    return image.id


def test_a_base_whose_id_changes_gets_a_new_layer_and_the_build_is_recorded(docker_client, wb, purpose):
    store = wb._services.store
    store.insert_run({"id": "run00002", "project": "demo", "project_path": "/p", "experiment": "train",
                      "status": "queued", "machine": "local", "executor": "docker", "created_at": time.time(),
                      "params": {}, "argv": ["python3", "-m", "workbench_nbrun", "train.ipynb"]})
    old = docker_client.images.get(BASE).id
    new = _labelled(docker_client, old, uuid.uuid4().hex)
    try:
        first = runner_image(wb._services, old, run_id="run00002", **CHEAP, purpose=purpose)
        second = runner_image(wb._services, new, **CHEAP, purpose=purpose)
        assert runner_tag(purpose, old) != runner_tag(purpose, new)
        assert first != second
        config = docker_client.api.inspect_image(second)["Config"]
        assert config["Labels"][RUNNER_BASE_LABEL] == new
        assert config["User"] == "nobody"  # installed as root, the base's user restored
        assert len(_said_adding(wb.said)) == 2
        assert runner_image(wb._services, old, **CHEAP, purpose=purpose) == first  # each found again, unbuilt
        assert runner_image(wb._services, new, **CHEAP, purpose=purpose) == second
        assert len(_said_adding(wb.said)) == 2
        events = [e for e in store.events("run00002") if e["kind"] == "build"]
        assert [e["message"] for e in events] == [
            f"added the {purpose} runner (pip) to {BASE} in a thin layer: {runner_tag(purpose, old)}"]
        assert b"Successfully tagged" in (wb.dirs.run_dir("run00002") / f"{purpose}-runner-build.log").read_bytes()
    finally:
        for ref in (runner_tag(purpose, new), new):  # the stand-in base, untagged, goes with its last child
            if local_image_id(docker_client, ref):
                docker_client.api.remove_image(ref, force=True)


def test_two_launches_at_once_both_end_with_the_tag(docker_client, home, purpose):
    base = docker_client.images.get(BASE).id
    answers: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def launch() -> None:
        workbench = Workbench()
        try:
            start.wait()
            answers.append(runner_image(workbench._services, base, **CHEAP, purpose=purpose))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            workbench.close()

    threads = [threading.Thread(target=launch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == [] and len(answers) == 2
    tagged = local_image_id(docker_client, runner_tag(purpose, base))
    assert tagged in answers
    for image_id in answers:  # each launch's answer is an image that exists and runs
        assert runs_cleanly(docker_client, image_id, ["python3", "-c", "import sys"])
    for image_id in set(answers) - {tagged}:  # a loser of the race, untagged: this test's to remove
        docker_client.api.remove_image(image_id, force=True)
