"""Runs on an SSH host: the container runs on the host's own Docker engine (a second dockerd only that host
reaches), its files live in the host's Workbench dir, and the history fills in on the workstation."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import assert_one_line_error
from remote_hosts import register

pytestmark = pytest.mark.docker

SPEC = r"""
[project]
name = "remote-counting"
[experiments.count]
image = "busybox:latest"
command = ["sh", "-c", "i=1; while [ $i -le {n} ]; do echo line $i; echo err $i >&2; echo '{\"step\": '$i', \"x\": '$i'}' >> $WORKBENCH_METRICS; sleep {pause}; i=$((i+1)); done; mkdir -p $WORKBENCH_OUTPUT/ckpt; echo model > $WORKBENCH_OUTPUT/ckpt/model.bin; echo big > $WORKBENCH_OUTPUT/other.txt; id -u > $WORKBENCH_OUTPUT/uid.txt; tail -1 /etc/hosts > $WORKBENCH_OUTPUT/hosts.txt"]
params = { n = 40, pause = 0.02 }
artifacts = ["ckpt"]
"""


def _metric_points(cli, run_id: str) -> int:
    shown = cli("runs", "show", run_id, "--json")
    assert shown.code == 0, shown.err
    return shown.json()["metrics"]["x"]["points"]


def _host_run_dir(shown: dict) -> Path:
    """The run's dir on the host (the sshd host is this machine, so its files can be looked at directly)."""
    machine, _, path = shown["host_run_dir"].partition(":")
    assert machine == shown["machine"]
    return Path(path)


def test_a_run_on_an_ssh_host_runs_there_and_records_everything_here(cli, make_project, remote_env, home, tmp_path):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host dir")))
    root = make_project(SPEC)
    done = cli("run", str(root), "--machine", "gpu-a", "--wait", "--json")
    assert done.code == 0, done.err
    run = done.json()
    assert run["status"] == "succeeded", run
    assert run["machine"] == "gpu-a"
    shown = cli("runs", "show", run["id"], "--json").json()
    assert shown["metrics"]["x"]["points"] == 40
    logs = cli("runs", "logs", run["id"]).out.splitlines()
    assert [l for l in logs if l.startswith("line ")] == [f"line {i}" for i in range(1, 41)]
    assert sorted(l for l in logs if l.startswith("err ")) == sorted(f"err {i}" for i in range(1, 41))
    # files: the run dir is on the host, listed and hashed there; the declared artifact is copied here
    host_dir = _host_run_dir(shown)
    assert str(host_dir).startswith(str(tmp_path / "host dir" / "runs"))
    assert (host_dir / "out" / "other.txt").read_text() == "big\n"
    # it ran on the host's engine (its own bridge network), not the workstation's
    assert (host_dir / "out" / "hosts.txt").read_text().startswith("10.231."), (host_dir / "out" / "hosts.txt").read_text()
    artifacts = {a["path"]: a for a in shown["artifacts"]}
    assert set(artifacts) >= {"ckpt/model.bin", "other.txt", "uid.txt"}
    import hashlib
    assert artifacts["ckpt/model.bin"]["sha256"] == hashlib.sha256(b"model\n").hexdigest()
    local_out = home / "runs" / run["id"] / "out"
    assert (local_out / "ckpt" / "model.bin").read_text() == "model\n"
    assert not (local_out / "other.txt").exists()  # listed, not copied: `runs pull` fetches it
    pulled = cli("runs", "pull", run["id"], "other.txt")
    assert pulled.code == 0, pulled.err
    assert (local_out / "other.txt").read_text() == "big\n"
    # runs use the host user's uid (root here)
    assert (host_dir / "out" / "uid.txt").read_text().strip() == str(os.getuid())
    listed = cli("runs", "list", "--json").json()
    assert listed[0]["machine"] == "gpu-a"
    # rm removes the host's run dir too
    assert cli("runs", "rm", run["id"]).code == 0
    assert not host_dir.exists()


def test_a_second_launch_of_an_unchanged_project_sends_nothing(cli, make_project, remote_env, tmp_path):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC.replace("n = 40", "n = 2"), files={"data/a.txt": "a" * 5000, "train.py": "x = 1\n"})
    first = cli("run", str(root), "--machine", "gpu-a", "--wait")
    assert first.code == 0, first.err
    again = cli("run", str(root), "--machine", "gpu-a", "--wait")
    assert again.code == 0, again.err
    assert "already there" in again.err, again.err
    (root / "train.py").write_text("x = 2\n")
    edited = cli("run", str(root), "--machine", "gpu-a", "--wait")
    assert edited.code == 0, edited.err
    assert "1 of" in edited.err and "sent 1 file" in edited.err, edited.err


def test_an_image_only_the_workstation_has_is_sent_and_said(cli, make_project, remote_env, tmp_path, docker_client):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    tag = "wbtest/only-here:1"
    docker_client.images.get("busybox:latest").tag(tag)
    try:
        remote_env.docker.images.remove(tag)
    except Exception:  # noqa: BLE001 - not there yet
        pass
    root = make_project(SPEC.replace("busybox:latest", tag).replace("n = 40", "n = 3"))
    done = cli("run", str(root), "--machine", "gpu-a", "--wait", "--json")
    assert done.code == 0, done.err
    assert done.json()["status"] == "succeeded"
    assert f"image {tag} is not on gpu-a; sending it from this workstation" in done.err
    assert "loaded on gpu-a" in done.err
    assert remote_env.docker.images.get(tag).id == docker_client.images.get(tag).id


def test_an_image_missing_everywhere_is_one_clear_error(cli, make_project, remote_env, tmp_path):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC.replace("busybox:latest", "127.0.0.1:1/nowhere/none:1"))
    failed = cli("run", str(root), "--machine", "gpu-a", "--json")
    assert_one_line_error(failed, "nowhere/none:1", "gpu-a")


def test_gpus_are_picked_from_the_host_and_pinned_by_uuid(cli, make_project, remote_env, tmp_path):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    uuid = remote_env.gpu_uuids[0]
    spec = SPEC.replace('image = "busybox:latest"', 'image = "busybox:latest"\ngpus = 1').replace(
        "command = [", "command = [\"sh\", \"-c\", \"echo visible=$NVIDIA_VISIBLE_DEVICES; sleep {pause}\"]\n#")
    root = make_project(spec.replace("pause = 0.02", "pause = 3"))
    started = cli("run", str(root), "--machine", "gpu-a", "--json")
    assert started.code == 0, started.err
    run = started.json()
    assert run["gpu_uuids"] == [uuid] and "H100" in run["gpu_model"] and run["driver"]
    # the only GPU is held by that run: a second launch is refused, clearly
    second = cli("run", str(root), "--machine", "gpu-a")
    assert_one_line_error(second, "needs 1 GPU", "gpu-a", "held by Workbench")
    waited = cli("runs", "show", run["id"], "--json")
    assert waited.code == 0
    subprocess.run(["sleep", "0"])
    final = None
    for _ in range(100):
        final = cli("runs", "show", run["id"], "--json").json()
        if final["status"] not in ("queued", "running"):
            break
        import time
        time.sleep(0.2)
    assert final["status"] == "succeeded", final
    assert f"visible={uuid}" in cli("runs", "logs", run["id"]).out
    # a foreign process on the GPU (the host's own nvidia-smi says so): not free
    apps = remote_env.gpu.dir / "gpu-apps.csv"
    apps.write_text(f"{uuid}, 4242, python3, 1200\n")
    try:
        busy = cli("run", str(root), "--machine", "gpu-a")
        assert_one_line_error(busy, "needs 1 GPU", "in use by other processes")
    finally:
        apps.unlink()


def test_a_host_without_docker_runs_with_the_process_executor_said_plainly(cli, make_project, remote_env, tmp_path):
    register(cli, "cpu-b", remote_env.nodocker, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC.replace("n = 40", "n = 5"))
    done = cli("run", str(root), "--machine", "cpu-b", "--wait", "--json")
    assert done.code == 0, done.err
    run = done.json()
    assert run["status"] == "succeeded" and run["executor"] == "process", run
    assert "process executor on cpu-b" in done.err
    assert _metric_points(cli, run["id"]) == 5
    assert "ckpt/model.bin" in {a["path"] for a in cli("runs", "show", run["id"], "--json").json()["artifacts"]}


def test_a_host_behind_a_jump_host_runs_experiments(cli, make_project, remote_env, tmp_path):
    register(cli, "behind", remote_env.target, remote_env.user_key, jump=remote_env.jump,
             extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC.replace("n = 40", "n = 4"))
    done = cli("run", str(root), "--machine", "behind", "--wait", "--json")
    assert done.code == 0, done.err
    assert done.json()["status"] == "succeeded"
    assert _metric_points(cli, done.json()["id"]) == 4


def test_bad_machines_are_one_line_errors(cli, make_project, remote_env):
    root = make_project(SPEC)
    unknown = cli("run", str(root), "--machine", "nosuch")
    assert_one_line_error(unknown, "no machine 'nosuch'")
    # registered but its key never trusted: refused, as for telemetry
    added = cli("machines", "add", "untrusted", "--ssh", remote_env.gpu.ssh, "--identity", str(remote_env.user_key))
    assert added.code == 0, added.err
    refused = cli("run", str(root), "--machine", "untrusted")
    assert_one_line_error(refused, "unknown host key")
    assert json.loads(cli("runs", "list", "--json").out) == []  # refused before anything was recorded


def test_cancel_rerun_follow_and_gc_work_for_remote_runs(cli, make_project, remote_env, tmp_path):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SPEC.replace("pause = 0.02", "pause = 0.5"))
    started = cli("run", str(root), "--machine", "gpu-a", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    cancelled = cli("runs", "cancel", run_id, "--json")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json()["status"] == "cancelled"
    assert not remote_env.docker.containers.list(filters={"label": f"workbench.run-id={run_id}"})
    # a rerun runs on the same machine, from the same snapshot
    again = cli("runs", "rerun", run_id, "--json")
    assert again.code == 0, again.err
    rerun = again.json()
    assert rerun["machine"] == "gpu-a"
    followed = cli("runs", "logs", rerun["id"], "--follow", timeout=120)
    assert followed.code == 0, followed.err
    assert [l for l in followed.out.splitlines() if l.startswith("line ")] == [f"line {i}" for i in range(1, 41)]
    # gc on the host: the snapshot stays while a run references it, and goes with the last one
    snapshots = tmp_path / "host" / "snapshots"
    trees = [p for p in snapshots.iterdir() if p.is_dir() and p.name not in ("objects",) and not p.name.startswith(".")]
    assert len(trees) == 1
    assert cli("runs", "rm", run_id, rerun["id"]).code == 0
    (tmp_path / "host" / "runs" / "deadbeef").mkdir()  # a run dir no run owns
    collected = cli("gc", "--json")
    assert collected.code == 0, collected.err
    freed = collected.json()["hosts"]["gpu-a"]
    assert freed["snapshots_removed"] == 1 and freed["objects_removed"] >= 1 and freed["run_dirs_removed"] == 1
    assert not trees[0].exists() and not (tmp_path / "host" / "runs" / "deadbeef").exists()


def test_a_dockerfile_is_built_on_the_host(cli, make_project, remote_env, tmp_path, docker_client):
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    spec = SPEC.replace('image = "busybox:latest"', 'dockerfile = "Dockerfile"').replace("n = 40", "n = 2")
    root = make_project(spec, files={"Dockerfile": "FROM busybox:latest\nRUN echo built-on-the-host > /built.txt\n"})
    done = cli("run", str(root), "--machine", "gpu-a", "--wait", "--json")
    assert done.code == 0, done.err
    assert "building Dockerfile on gpu-a" in done.err and "built-on-the-host" in done.err
    tags = [t for image in remote_env.docker.images.list() for t in image.tags if t.startswith("workbench/remote-counting:")]
    assert tags, "the image was not built on the host's engine"
    assert not [t for image in docker_client.images.list() for t in image.tags if t in tags]
