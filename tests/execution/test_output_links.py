"""An experiment's output dir may hold symbolic links to anything on the host (issue #8, item 3): Workbench
records them as links and never reads through them — not as artifacts, not as the metrics file."""

from __future__ import annotations

import hashlib
import json

import pytest

pytestmark = pytest.mark.usefixtures("docker_client")


def _spec(script: str, artifacts: list[str] | None = None) -> str:
    spec = '[experiments.m]\nimage = "busybox:latest"\ncommand = ' + json.dumps(["sh", "-c", script]) + "\n"
    if artifacts is not None:
        spec += "artifacts = " + json.dumps(artifacts) + "\n"
    return spec


def test_links_in_the_output_dir_are_recorded_as_links_never_followed(cli, make_project, tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("the host's own data\n")  # readable by Workbench, unlike /etc/shadow
    script = (f"ln -s /etc/shadow /wb/out/x; ln -s /etc /wb/out/d; ln -s {secret} /wb/out/s; "
              "mkfifo /wb/out/p; mkdir /wb/out/sub; echo hi > /wb/out/real.txt; echo deep > /wb/out/sub/f.txt")
    declared = ["real.txt", "x", "sub/f.txt", "d/passwd", "d/hostname", "missing.bin"]
    result = cli("run", str(make_project(_spec(script, declared))), "--wait", "--json")
    assert result.code == 0, result.err
    run = cli("runs", "show", result.json()["id"], "--json").json()
    assert run["status"] == "succeeded"
    assert run["artifacts"] == [
        {"path": "d", "size": 0, "sha256": "", "link": "/etc"},
        {"path": "real.txt", "size": 3, "sha256": hashlib.sha256(b"hi\n").hexdigest(), "link": None},
        {"path": "s", "size": 0, "sha256": "", "link": str(secret)},
        {"path": "sub/f.txt", "size": 5, "sha256": hashlib.sha256(b"deep\n").hexdigest(), "link": None},
        {"path": "x", "size": 0, "sha256": "", "link": "/etc/shadow"},
    ]  # nothing under d/ (the host's /etc), no fifo, no hash of what a link points at
    # files declared under a linked dir are not looked up on the host either
    missing = [e["message"] for e in run["events"] if e["message"].startswith("declared artifacts not written")]
    assert missing == ["declared artifacts not written: d/passwd, d/hostname, missing.bin"]
    shown = cli("runs", "show", run["id"]).out
    assert "x" in shown and "link to /etc/shadow (not followed)" in shown


def test_a_metrics_file_replaced_by_a_link_to_a_host_file_is_not_ingested(cli, make_project, tmp_path):
    host_metrics = tmp_path / "host-metrics.jsonl"
    host_metrics.write_text('{"step": 0, "stolen": 1.5}\n{"step": 1, "stolen": 2.5}\n')
    script = f"rm -f $WORKBENCH_METRICS; ln -s {host_metrics} $WORKBENCH_METRICS; sleep 1"
    result = cli("run", str(make_project(_spec(script))), "--wait", "--json")
    assert result.code == 0, result.err
    run = cli("runs", "show", result.json()["id"], "--json").json()
    assert run["status"] == "succeeded"
    assert run["metric_points"] == 0 and run["metrics"] == {} and run["summary"] == {}
    warnings = [e["message"] for e in run["events"] if e["kind"] == "warning"]
    assert warnings == ["metrics.jsonl is a symbolic link; not followed"]
