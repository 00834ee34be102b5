"""The notebook runner's image on a host's engine (issue 24): looked up, probed and built there (over the
machine's SSH connection), never on this workstation's engine."""

from __future__ import annotations

import uuid

import pytest

from remote_hosts import copy_image, register
from workbench.errors import WorkbenchError
from workbench.execution.images import local_image_id
from workbench.services import Workbench
from workbench.services.images import RUNNER_BASE_LABEL, runner_image, runner_tag

pytestmark = pytest.mark.docker


def test_the_runner_layer_is_built_on_the_hosts_engine(cli, remote_env, docker_client):
    register(cli, "gpu", remote_env.gpu, remote_env.user_key)
    copy_image("python:3.11-slim", remote_env.docker_host)  # what `docker pull` would have put there
    host = remote_env.docker
    base = host.images.get("python:3.11-slim").id
    purpose = f"wbtest-{uuid.uuid4().hex[:8]}"
    tag = runner_tag(purpose, base)
    said: list[str] = []
    wb = Workbench(progress=lambda line: said.append(str(line)))
    try:
        # a stand-in runner pip already has (no package index there), behind a probe that always fails
        cheap = {"packages": ("pip",), "probe": "raise SystemExit(1)", "purpose": purpose}
        built = runner_image(wb._services, base, machine="gpu", **cheap)
        assert local_image_id(host, tag) == built
        assert host.api.inspect_image(built)["Config"]["Labels"][RUNNER_BASE_LABEL] == base
        assert local_image_id(docker_client, tag) is None  # nothing built here
        assert [line for line in said if "adding it in a thin layer, once" in line] == [
            f"python:3.11-slim lacks the {purpose} runner (pip): adding it in a thin layer, once: {tag}"]
        said.clear()
        assert runner_image(wb._services, base, machine="gpu", **cheap) == built
        assert said == []
        # a host image without python: the error says what to do
        with pytest.raises(WorkbenchError, match=r"^busybox:latest lacks the notebook runner \(nbclient, ipykernel\)"
                                                 r" and it could not be added to it \((/bin/sh: )?python3: not found\) "
                                                 r"\(add nbclient and ipykernel to the image\)$"):
            runner_image(wb._services, host.images.get("busybox:latest").id, machine="gpu")
    finally:
        wb.close()
        if local_image_id(host, tag):
            host.api.remove_image(tag, force=True)
