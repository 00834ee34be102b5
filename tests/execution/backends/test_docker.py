"""End to end against the real Docker engine: launch, follow, record, cancel, rerun, remove."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from helpers import SAMPLES, assert_one_line_error, wait_for

pytestmark = pytest.mark.usefixtures("docker_client")

ECHO_SPEC = r"""
[project]
name = "echo"
[experiments.echo]
image = "busybox:latest"
command = ["sh", "-c", "echo \"$1\"; echo \"$WB_PARAM_MSG\" >&2; env > $WORKBENCH_OUTPUT/env.txt; echo '{\"step\": 0, \"x\": 1}' > $WORKBENCH_METRICS", "sh", "{msg}"]
params = { msg = "hi" }
env = { API_TOKEN = "s3cret", PLAIN = "v" }
"""


def echo_project(make_project) -> str:
    return str(make_project(ECHO_SPEC))


def test_hello_shell_end_to_end(cli, docker_client):
    result = cli("run", str(SAMPLES / "hello-shell"), "--wait", "-p", "steps=4", "--json")
    assert result.code == 0, result.err
    run = result.json()
    assert run["status"] == "succeeded" and run["exit_code"] == 0
    assert run["params"] == {"greeting": "hello", "steps": 4}
    assert run["summary"] == {"value": 4.0} and run["metric_points"] == 4

    shown = cli("runs", "show", run["id"][:5], "--json").json()
    assert shown["metrics"]["value"] == {"points": 4, "last": 4.0, "min": 1.0, "max": 4.0}
    assert [a["path"] for a in shown["artifacts"]] == ["greeting.txt"]
    assert shown["artifacts"][0]["size"] > 0 and len(shown["artifacts"][0]["sha256"]) == 64
    assert shown["image"] == "busybox:latest" and shown["image_id"].startswith("sha256:")
    assert shown["snapshot"] and shown["argv"] == ["sh", "run.sh", "hello", "4"]
    assert shown["env"]["WORKBENCH_RUN_ID"] == run["id"] and shown["env"]["WB_PARAM_STEPS"] == "4"

    logs = cli("runs", "logs", run["id"])
    assert f"hello from {run['id']}" in logs.out
    stamped = cli("runs", "logs", run["id"], "--timestamps").out.splitlines()[0]
    assert stamped[:4].isdigit() and stamped.split(" ", 1)[0].endswith("Z")
    # the container is gone once ingested; the record stays
    assert not docker_client.containers.list(all=True, filters={"label": f"workbench.run-id={run['id']}"})


def test_container_contract_labels_env_user_and_hostile_params(cli, make_project, docker_client, home):
    hostile = "; rm -rf x $(touch /tmp/pwned) `id` 'single' \"double\"\nsecond line"
    root = echo_project(make_project)
    result = cli("run", root, "-p", f"msg={hostile}", "--json")
    assert result.code == 0, result.err
    run_id = result.json()["id"]
    container = wait_for(lambda: docker_client.containers.list(all=True, filters={"label": f"workbench.run-id={run_id}"}))[0]
    labels = container.labels
    instance = sqlite3.connect(home / "workbench.db").execute("SELECT value FROM meta WHERE key='instance'").fetchone()[0]
    assert labels["workbench.project"] == "echo" and labels["workbench.kind"] == "run"
    assert labels["workbench.instance"] == instance
    assert container.attrs["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    final = cli("runs", "show", run_id, "--json")
    wait_for(lambda: cli("runs", "show", run_id, "--json").json()["status"] == "succeeded")
    logs = cli("runs", "logs", run_id).out
    assert hostile in logs  # stdout ($1) and stderr (env var) both verbatim
    assert logs.count("second line") == 2
    env_txt = (home / "runs" / run_id / "out" / "env.txt").read_text()
    assert "WORKBENCH_OUTPUT=/wb/out" in env_txt and "WORKBENCH_METRICS=/wb/out/metrics.jsonl" in env_txt
    assert "API_TOKEN=s3cret" in env_txt  # the run gets the real value...
    shown = cli("runs", "show", run_id, "--json").json()
    assert shown["env"]["API_TOKEN"] == "***" and shown["env"]["PLAIN"] == "v"  # ...the history does not
    assert not os.path.exists("/tmp/pwned")
    assert final.code == 0


def test_failing_run_and_wait_exit_code(cli, make_project):
    root = make_project('[experiments.x]\nimage = "busybox:latest"\ncommand = ["sh", "-c", "echo bye; exit 3"]\n')
    result = cli("run", str(root), "--wait")
    assert result.code == 1
    assert "bye" in result.out
    assert "failed" in result.err and "exit code 3" in result.err
    run = cli("runs", "list", "--json").json()[0]
    assert run["status"] == "failed" and run["exit_code"] == 3


def test_signal_and_oom_are_named(cli, make_project):
    root = make_project(
        '[experiments.sig]\nimage = "busybox:latest"\ncommand = ["sh", "-c", "kill -9 $$"]\n'
        '[experiments.oom]\nimage = "python:3.11-slim"\nmemory = "64m"\n'
        'command = ["python3", "-c", "x = bytearray(512 * 1024 * 1024); print(len(x))"]\n'
    )
    sig = cli("run", str(root), "-e", "sig", "--wait", "--json").json()
    assert sig["status"] == "failed" and "signal 9 (SIGKILL)" in sig["status_reason"]
    oom = cli("run", str(root), "-e", "oom", "--wait", "--json").json()
    assert oom["status"] == "failed" and oom["status_reason"] == "out of memory (limit 64m)"


def test_cpus_limit_the_container(cli, make_project):
    """`cpus = 1`: the container's CFS quota is one CPU's period (cgroup v1 or v2)."""
    root = make_project('[experiments.c]\nimage = "busybox:latest"\ncpus = 1\ncommand = ["sh", "-c", '
                        '"echo quota=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)"]\n')
    done = cli("run", str(root), "--wait", "--json")
    assert done.code == 0, done.err
    assert "quota=100000" in cli("runs", "logs", done.json()["id"]).out
    bad = make_project('[experiments.c]\nimage = "busybox:latest"\ncpus = 0\ncommand = ["true"]\n')
    assert_one_line_error(cli("run", str(bad)), "experiments.c.cpus", "expected an integer >= 1")


def test_cancel_a_running_run(cli, make_project):
    root = make_project('[experiments.long]\nimage = "busybox:latest"\ncommand = ["sleep", "300"]\n')
    run_id = cli("run", str(root), "--json").json()["id"]
    cancelled = cli("runs", "cancel", run_id, "--json")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json()["status"] == "cancelled"
    again = cli("runs", "cancel", run_id)
    assert again.code == 0 and "already cancelled; nothing to cancel" in again.err  # not an error (issue 8)


def test_rerun_uses_stored_snapshot_not_the_folder(cli, make_project):
    root = make_project('[experiments.cat]\nimage = "busybox:latest"\ncommand = ["cat", "msg.txt"]\n',
                        {"msg.txt": "first version"})
    first = cli("run", str(root), "--wait", "--json").json()
    (root / "msg.txt").write_text("edited later")
    rerun = cli("runs", "rerun", first["id"], "--wait", "--json")
    assert rerun.code == 0, rerun.err
    second = cli("runs", "show", rerun.json()["id"], "--json").json()
    assert second["rerun_of"] == first["id"]
    assert second["snapshot"] == cli("runs", "show", first["id"], "--json").json()["snapshot"]
    assert "first version" in cli("runs", "logs", second["id"]).out


def test_snapshots_are_deduplicated_and_read_only(cli, make_project, home):
    root = make_project('[experiments.w]\nimage = "busybox:latest"\ncommand = ["sh", "-c", "echo x > here.txt"]\n',
                        {"data.bin": "x" * 1000})
    runs = [cli("run", str(root), "--wait", "--json").json() for _ in range(3)]
    snapshots = [p for p in (home / "snapshots").iterdir() if p.is_dir() and p.name != "objects"]
    assert len(snapshots) == 1
    assert all(r["status"] == "failed" for r in runs)  # the snapshot is mounted read-only
    assert "Read-only file system" in cli("runs", "logs", runs[0]["id"]).out


def test_missing_image_without_registry(cli, make_project):
    root = make_project('[experiments.x]\nimage = "127.0.0.1:5999/nowhere/img:1"\ncommand = ["true"]\n')
    result = cli("run", str(root))
    assert_one_line_error(result, "image 127.0.0.1:5999/nowhere/img:1 is not on this engine and could not be pulled")
    run = cli("runs", "list", "--json").json()[0]
    assert run["status"] == "failed" and "could not be pulled" in run["status_reason"]


def test_engine_down_is_one_line_and_process_fallback_is_said(cli, make_project):
    root = make_project('[experiments.x]\nimage = "busybox:latest"\ncommand = ["echo", "ran"]\n')
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    forced = cli("run", str(root), "--executor", "docker", env=env)
    assert_one_line_error(forced, "no Docker engine at unix:///nonexistent/docker.sock", "--executor process")
    fallback = cli("run", str(root), "--wait", env=env)
    assert fallback.code == 0, fallback.err
    assert "running with the process executor instead" in fallback.err
    assert "ran" in fallback.out


def test_gpu_request_on_engine_without_gpu_runtime(home, make_project, docker_client):
    """A (fixture) free H100 on this machine, but the engine has no NVIDIA runtime: a clear error."""
    from workbench.machines.gpus import GpuInventory
    from workbench.machines.nvidia_smi import GpuReading
    from workbench.services import Workbench
    from workbench.errors import WorkbenchError

    uuid = "GPU-3a9a2f4c-6b3e-4c8e-9d52-6f0e1c7d2a11"
    probe = lambda: GpuInventory([GpuReading(0, uuid, "NVIDIA H100 80GB HBM3", memory_total=80 << 30,
                                                   memory_used=0, utilization=0.0)], driver="580.159.04")
    root = make_project('[experiments.g]\nimage = "busybox:latest"\ncommand = ["true"]\ngpus = 1\n')
    wb = Workbench(gpu_probe=probe)
    with pytest.raises(WorkbenchError, match="has no GPU runtime"):
        wb.launch(str(root))
    run = wb._services.store.list_runs()[0]
    assert run["status"] == "failed"
    assert wb._services.store.get_run(run["id"])["gpu_uuids"] == [uuid]
    # Placement learned it (recorded with the machine, so every process knows): `--machine auto` passes
    # the engine over for GPU runs — here the only candidate, so refused at once rather than queued.
    with pytest.raises(WorkbenchError, match="no machine with 1 GPU.s. can give a container GPUs now .local: "
                                             "the Docker engine on this machine has no GPU runtime"):
        Workbench(gpu_probe=probe).launch(str(root), machine="auto")
    assert len(wb._services.store.list_runs()) == 1  # nothing queued
    from workbench.services import placement
    placement.NO_RUNTIME_RETRY, kept = 0.0, placement.NO_RUNTIME_RETRY  # later it is tried again
    try:
        assert placement.no_gpu_runtime(wb._services, "local") is None
    finally:
        placement.NO_RUNTIME_RETRY = kept
    none = Workbench(gpu_probe=lambda: GpuInventory([], error="NVML: Driver Not Loaded"))
    with pytest.raises(WorkbenchError, match=r"needs 1 GPU\(s\) but machine local has 0 free \(NVML: Driver Not Loaded\)"):
        none.launch(str(root))


def test_runs_rm_and_gc(cli, make_project, home):
    root = make_project('[experiments.x]\nimage = "busybox:latest"\ncommand = ["echo", "x"]\n', {"a.txt": "1"})
    first = cli("run", str(root), "--wait", "--json").json()
    (root / "a.txt").write_text("2")
    second = cli("run", str(root), "--wait", "--json").json()
    assert cli("runs", "rm", first["id"]).code == 0
    assert not (home / "runs" / first["id"]).exists()
    gc = cli("gc", "--json").json()
    assert gc["snapshots_removed"] == 1 and gc["bytes_freed"] > 0
    assert [r["id"] for r in cli("runs", "list", "--json").json()] == [second["id"]]
    assert_one_line_error(cli("runs", "rm", first["id"]), f"no run {first['id']!r}")
    rerun = cli("runs", "rerun", second["id"], "--wait", "--json")
    assert rerun.code == 0 and rerun.json()["status"] == "succeeded"
