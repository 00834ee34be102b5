"""Images users will regret: each run's image size with its record, what Workbench's images take in `doctor` and
`gc`, and the one-time advice about torch's CUDA wheels (read from the Dockerfile; nothing is downloaded)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from workbench.execution.images import torch_advice

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
ADVICE = "pip-installs torch without an index"


def _project(make_project, dockerfile: str, name: str, files: dict[str, str] | None = None) -> Path:
    spec = f'[project]\nname = "{name}"\n[experiments.t]\ndockerfile = "Dockerfile"\ncommand = ["cat", "/v"]\n'
    return make_project(spec, {"Dockerfile": dockerfile, **(files or {})}, name=name)


def _remove_repository(client, repository: str) -> None:
    for image in client.images.list(name=repository):
        try:
            client.images.remove(image.id, force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


@pytest.mark.parametrize("dockerfile, files, advised", [
    ("FROM x\nRUN true || pip install torch\n", {}, True),
    ("FROM x\nRUN echo pip install torch\n", {}, True),
    ("FROM x\nRUN pip3 install --no-cache-dir numpy torch==2.1.0 \\\n    torchvision\n", {}, True),
    ("FROM x\nRUN python -m pip install 'torchaudio>=2' && echo done\n", {}, True),
    ("FROM x\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n", {"requirements.txt": "numpy\ntorch==2.2\n"}, True),
    ("FROM x\nRUN pip install torch --index-url https://download.pytorch.org/whl/cpu\n", {}, False),
    ("FROM x\nRUN pip install --extra-index-url=https://download.pytorch.org/whl/cpu torch torchvision\n", {}, False),
    ("FROM x\nENV PIP_INDEX_URL=https://download.pytorch.org/whl/cpu\nRUN pip install torch\n", {}, False),
    ("FROM x\nRUN pip install -r req.txt\n", {"req.txt": "--index-url https://download.pytorch.org/whl/cpu\ntorch\n"}, False),
    ("FROM x\nRUN pip install -r requirements.txt\n", {"requirements.txt": "numpy\n"}, False),
    ("FROM x\n# RUN pip install torch\nRUN pip install torchmetrics && echo torch\n", {}, False),
])
def test_torch_advice_reads_the_dockerfile(tmp_path, dockerfile, files, advised):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    advice = torch_advice(tmp_path, "Dockerfile")
    assert (advice is not None) == advised, advice
    if advised:
        assert "6 GB" in advice and "pip install torch --index-url https://download.pytorch.org/whl/cpu" in advice


def test_torch_advice_once_for_the_first_build(cli, make_project, docker_client):
    name = f"torchy-{secrets.token_hex(3)}"
    # Harmless: `true` succeeds, so the pip install never runs (nothing is downloaded), but the line matches.
    root = _project(make_project, "FROM busybox:latest\nCOPY notes.txt /notes\nRUN true || pip install torch\n"
                                  "RUN echo v1 > /v\n", name, {"notes.txt": "first\n"})
    cpu = _project(make_project, "FROM busybox:latest\nRUN true || pip install torch --index-url "
                                 "https://download.pytorch.org/whl/cpu\nRUN echo cpu > /v\n", name + "-cpu")
    try:
        first = cli("run", str(root), "--wait", "--json")
        assert first.code == 0, first.err
        assert first.err.count(ADVICE) == 1, first.err
        assert "6 GB" in first.err and "--index-url https://download.pytorch.org/whl/cpu" in first.err
        # Its image exists: not said again.
        second = cli("run", str(root), "--wait", "--json")
        assert second.code == 0, second.err
        assert ADVICE not in second.err, second.err
        # A file the image copies changes (a new build), the Dockerfile does not: still said only once.
        (root / "notes.txt").write_text("changed\n")
        third = cli("run", str(root), "--wait", "--json")
        assert third.code == 0, third.err
        assert "building Dockerfile" in third.err and ADVICE not in third.err, third.err
        events = cli("runs", "show", first.json()["id"], "--json").json()["events"]
        assert [e for e in events if e["kind"] == "warning" and ADVICE in e["message"]], events

        plain = cli("run", str(cpu), "--wait")
        assert plain.code == 0, plain.err
        assert "building Dockerfile" in plain.err and ADVICE not in plain.err, plain.err
    finally:
        _remove_repository(docker_client, f"workbench/{name}")
        _remove_repository(docker_client, f"workbench/{name}-cpu")


def test_image_size_in_the_record_doctor_and_gc(cli, make_project, docker_client):
    name = f"sized-{secrets.token_hex(3)}"
    root = _project(make_project, "FROM busybox:latest\nRUN head -c 300000 /dev/urandom > /blob && echo v1 > /v\n", name)
    try:
        result = cli("run", str(root), "--wait", "--json")
        assert result.code == 0, result.err
        run_id = result.json()["id"]
        run = cli("runs", "show", run_id, "--json").json()
        size = docker_client.api.inspect_image(run["image_id"])["Size"]
        assert run["image_size"] == size and size > 300_000, run
        assert any(e["kind"] == "image" and f"{size} bytes" in e["message"] for e in run["events"]), run["events"]
        shown = cli("runs", "show", run_id)
        image_line = next(line for line in shown.out.splitlines() if line.strip().startswith("image"))
        assert f"{size:,} bytes" in image_line and "MiB" in image_line, shown.out
        # Offline: the record alone says it.
        offline = cli("runs", "show", run_id, "--json", env=NO_ENGINE)
        assert offline.code == 0 and offline.json()["image_size"] == size, offline.err
        # A rerun reuses the image without resolving it: the size recorded for that image still shows.
        rerun = cli("runs", "rerun", run_id, "--wait", "--json")
        assert rerun.code == 0, rerun.err
        assert cli("runs", "show", rerun.json()["id"], "--json").json()["image_size"] == size

        doctor = cli("doctor", "--json")
        check = next(c for c in doctor.json() if c["check"] == "workbench images")
        assert check["status"] == "ok" and check["detail"].startswith("1 image, "), check
        assert "on disk" in check["detail"]
        assert "workbench images" in cli("doctor").out

        gc = cli("gc", "--json").json()
        assert gc["images_left"] == 1 and gc["image_disk_bytes"] >= size, gc  # busybox's layers counted once
        assert "Workbench's images now take" in cli("gc").err
    finally:
        _remove_repository(docker_client, f"workbench/{name}")


def test_no_engine_is_said_not_failed(cli):
    doctor = cli("doctor", "--json", env=NO_ENGINE)
    assert "Traceback" not in doctor.err
    check = next(c for c in doctor.json() if c["check"] == "workbench images")
    assert check["status"] == "warn" and "not measured" in check["detail"], check
    gc = cli("gc", "--json", env=NO_ENGINE)
    assert gc.code == 0, gc.err
    report = gc.json()
    assert report["images_left"] is None and report["image_disk_bytes"] is None
    assert any("not measured" in note for note in report["notes"]), report


def test_doctor_warns_above_the_threshold(home, monkeypatch, docker_client, make_project, cli):
    from workbench.services import Workbench, doctor

    name = f"big-{secrets.token_hex(3)}"
    root = _project(make_project, "FROM busybox:latest\nRUN echo v1 > /v\n", name)
    try:
        assert cli("run", str(root), "--wait").code == 0
        monkeypatch.setattr(doctor, "IMAGES_WARN_BYTES", 1000)
        wb = Workbench()
        try:
            check = next(c for c in wb.doctor() if c["check"] == "workbench images")
        finally:
            wb.close()
        assert check["status"] == "warn" and "workbench gc" in check["fix"], check
    finally:
        _remove_repository(docker_client, f"workbench/{name}")
