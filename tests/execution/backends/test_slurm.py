"""Slurm (issue 13): a real single-node cluster (slurmctld + slurmd + munged from Debian's slurm-wlm, started by
.ci/slurm.sh, two stand-in GPUs in gres.conf), its login node the SSH test host (the jobs run on this machine;
the Workbench dir given with --dir is the "shared file system"). Runs are Slurm jobs through the same seam
as any host: logs and metrics ingested over SFTP, CUDA_VISIBLE_DEVICES set by Slurm, PENDING said with
Slurm's reason, cancel by scancel, a time limit recorded as such, one squeue per poll interval however
many runs are followed."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from helpers import assert_one_line_error, background_pids, require, wait_for
from remote_hosts import cluster_up

pytestmark = pytest.mark.docker

SPEC = """
[project]
name = "on-slurm"
[experiments.train]
image = "python:3.11-slim"
command = ["sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES job=$SLURM_JOB_ID lr={lr} mem=$SLURM_MEM_PER_NODE cpus=$SLURM_CPUS_PER_TASK; for i in 1 2 3; do echo '{\\"loss\\": '$i'}' >> $WORKBENCH_METRICS; sleep {pause}; done"]
params = { lr = 0.1, pause = 0.2 }
gpus = 1
"""
SQUEUE_LOG = "squeue-calls.log"
SACCT_LOG = "sacct-calls.log"


def add_hpc(cli, remote_env, name: str, shared, *options: str) -> str:
    """Adds and trusts the cluster; returns what `machines add` said on stderr."""
    added = cli("machines", "add", name, "--slurm", remote_env.gpu.ssh, "--identity", str(remote_env.user_key),
                "--dir", str(shared), *options, "--json")
    assert added.code == 0, added.err
    assert added.json()["fingerprint"] == remote_env.gpu.fingerprint
    assert cli("machines", "trust", name, "--fingerprint", remote_env.gpu.fingerprint).code == 0
    return added.err


@pytest.fixture
def hpc(cli, remote_env, tmp_path):
    """The cluster as machine `hpc` (squeue every 2 s), squeue and sacct calls counted by wrappers first on
    the login node's PATH; yields squeue's log (sacct's is next to it, SACCT_LOG)."""
    require(cluster_up(), "no Slurm cluster answers (sinfo): .ci/slurm.sh starts one")
    first = type(tmp_path)(remote_env.ssh(remote_env.gpu, "echo $PATH").stdout.strip().split(":")[0])
    wrappers = []
    for command, name in (("squeue", SQUEUE_LOG), ("sacct", SACCT_LOG)):
        wrapper = first / command
        wrapper.write_text(f"#!/bin/sh\necho \"$(date +%s.%N) $*\" >> {tmp_path / name}\n"
                           f"exec /usr/bin/{command} \"$@\"\n")
        wrapper.chmod(0o755)
        wrappers.append(wrapper)
    add_hpc(cli, remote_env, "hpc", tmp_path / "shared", "--poll", "2", "--time", "00:10:00")
    yield tmp_path / SQUEUE_LOG
    for wrapper in wrappers:
        wrapper.unlink(missing_ok=True)


def kill_job_processes(stepd: int) -> int:
    """SIGKILL to every process of a job's batch step (its batch shell and the experiment), as the OOM killer
    of a cgroup or a dying node does; the test cluster's proctrack/linuxproc would leave the experiment
    running after its shell. Returns how many were killed."""
    victims, frontier = [], [stepd]
    while frontier:
        found = subprocess.run(["pgrep", "-P", str(frontier.pop())], capture_output=True, text=True).stdout.split()
        victims += [int(p) for p in found]
        frontier += [int(p) for p in found]
    for pid in victims:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    return len(victims)


def _show(cli, run_id):
    shown = cli("runs", "show", run_id, "--json")
    assert shown.code == 0, shown.err
    return shown.json()


def test_a_run_on_slurm_gets_its_gpu_from_slurm_and_is_ingested(cli, make_project, hpc):
    root = make_project(SPEC.replace("gpus = 1", 'gpus = 1\nmemory = "300m"\ncpus = 1\n'
                                     'setup = "source /etc/os-release; echo setup-ran-in $SLURM_JOB_PARTITION on $ID"'))
    done = cli("run", str(root), "--machine", "hpc", "--wait", "--json", timeout=300)
    assert done.code == 0, done.err
    run = done.json()
    assert run["status"] == "succeeded" and run["executor"] == "slurm" and run["machine"] == "hpc"
    logs = cli("runs", "logs", run["id"]).out
    line = next(l for l in logs.splitlines() if "gpus=" in l)
    assert "gpus=0" in line or "gpus=1" in line  # Slurm's own device index from --gres=gpu:1
    assert "job=" in line and "lr=0.1" in line
    assert "mem=300 cpus=1" in line  # the spec's memory and cpus, as --mem and --cpus-per-task
    index = line.split("gpus=")[1].split()[0]
    node = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    assert _show(cli, run["id"])["gpu_uuids"] == [f"{node}:gpu{index}"]  # recorded: the one Slurm gave it
    assert any(l.split() == ["gpus", f"{node}:gpu{index}"] for l in cli("runs", "show", run["id"]).out.splitlines())
    assert "setup-ran-in gpu on debian" in logs  # the experiment's setup line (bash: `source` works), first
    shown = _show(cli, run["id"])
    assert shown["metric_points"] == 3 and shown["slurm_job"].isdigit()
    assert any("runs as a process in its snapshot" in e["message"] for e in shown["events"])
    doctor = cli("doctor", "hpc", "--json")
    checks = {c["check"]: c for c in doctor.json()}
    assert checks["sbatch"]["status"] == "ok" and checks["partition"]["status"] == "ok", checks
    assert "gpu" in checks["partition"]["detail"] and "gres gpu:2" in checks["partition"]["detail"]
    assert checks["accounting"]["status"] == "ok" and "sacct answers" in checks["accounting"]["detail"], checks
    assert "docker engine" not in checks  # a login node's engine is not where jobs run


def test_three_one_gpu_runs_on_two_gpus_the_third_pends_with_slurms_reason(cli, make_project, hpc):
    root = make_project(SPEC.replace("pause = 0.2", "pause = 4"))
    ids = []
    for _ in range(3):
        started = cli("run", str(root), "--machine", "hpc", "--json")
        assert started.code == 0, started.err
        ids.append(started.json()["id"])
    pending = wait_for(lambda: next((r for r in ids if any(
        word in (_show(cli, r).get("status_reason") or "") for word in ("(Resources)", "(Priority)"))), None),
        timeout=60, interval=0.5)
    assert _show(cli, pending)["status_reason"].startswith("Slurm: PENDING (")
    for run_id in ids:
        final = wait_for(lambda: (s := _show(cli, run_id))["status"] not in ("queued", "running") and s,
                         timeout=180, interval=0.5)
        assert final["status"] == "succeeded", final
    events = [e["kind"] for e in _show(cli, pending)["events"]]
    assert "pending" in events and "running" in events


def test_cancel_and_a_time_limit(cli, make_project, hpc, remote_env, tmp_path):
    root = make_project(SPEC.replace("pause = 0.2", "pause = 30"))
    # a job killed by its time limit (20 s here, which Slurm makes its minimum, 1 minute): started first, so
    # that the cancel below happens while it runs towards its limit
    said = add_hpc(cli, remote_env, "hpc-short", tmp_path / "shared", "--poll", "2", "--time", "0:20")
    assert "--time 0:20 (20 s) becomes 1 minute (00:01:00)" in said  # said when the machine is added
    timed = cli("run", str(root), "--machine", "hpc-short", "--json")
    assert timed.code == 0, timed.err
    started = cli("run", str(root), "--machine", "hpc", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    wait_for(lambda: _show(cli, run_id)["metric_points"] >= 1, timeout=60, interval=0.5)
    cancelled = cli("runs", "cancel", run_id, "--json")
    assert cancelled.code == 0, cancelled.err
    final = wait_for(lambda: (s := _show(cli, run_id))["status"] not in ("queued", "running") and s, timeout=60,
                     interval=0.5)
    assert final["status"] == "cancelled", final
    job = final["slurm_job"]
    left = subprocess.run(["squeue", "-h", "-j", job, "-t", "R,PD"], capture_output=True, text=True).stdout
    assert left.strip() == ""  # scancel'ed: nothing of it runs in the cluster
    # the time-limited run fails with Slurm's reason
    record = wait_for(lambda: (s := _show(cli, timed.json()["id"]))["status"] not in ("queued", "running") and s,
                      timeout=180, interval=1)
    assert record["status"] == "failed" and "time limit" in record["status_reason"], record
    assert any(e["kind"] == "warning" and "becomes 1 minute" in e["message"] for e in record["events"]), record


def test_jobs_cancelled_outside_workbench_are_cancelled_runs(cli, make_project, hpc):
    """`scancel` by the user, of a running job and of one Slurm still holds (both GPUs taken by the first):
    each run is recorded cancelled, not failed, with Slurm's word in its events."""
    root = make_project(SPEC.replace("gpus = 1", "gpus = 2").replace("pause = 0.2", "pause = 30"))
    ids = []
    for _ in range(2):
        started = cli("run", str(root), "--machine", "hpc", "--json")
        assert started.code == 0, started.err
        ids.append(started.json()["id"])
    wait_for(lambda: _show(cli, ids[0])["metric_points"] >= 1, timeout=60, interval=0.5)
    wait_for(lambda: (_show(cli, ids[1]).get("status_reason") or "").startswith("Slurm: PENDING"), timeout=30,
             interval=0.5)
    for run_id in ids:
        subprocess.run(["scancel", _show(cli, run_id)["slurm_job"]], check=True)
    for run_id in ids:
        final = wait_for(lambda: (s := _show(cli, run_id))["status"] not in ("queued", "running") and s,
                         timeout=90, interval=0.5)
        assert final["status"] == "cancelled", final
        said = [e["message"] for e in final["events"] if e["kind"] == "cancelled"]
        assert said and "(CANCELLED), not Workbench" in said[0], final["events"]


def _follower_of(home, run_id: str) -> list[int]:
    from helpers import background_pids

    return [pid for pid in background_pids(home, (b"_follow",))
            if run_id.encode() in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")]


def test_the_follower_killed_mid_run_loses_nothing_and_squeue_is_polled_once_per_interval(cli, make_project, hpc,
                                                                                         home):
    import signal

    root = make_project(SPEC.replace("pause = 0.2", "pause = 1"))
    ids = []
    for _ in range(4):  # two run, two pend: four followers, each looking at its job
        started = cli("run", str(root), "--machine", "hpc", "--json")
        assert started.code == 0, started.err
        ids.append(started.json()["id"])
    wait_for(lambda: _show(cli, ids[0])["metric_points"] >= 1, timeout=60, interval=0.3)
    followers = _follower_of(home, ids[0])
    assert followers, "no follower for the run"
    for pid in followers:
        os.kill(pid, signal.SIGKILL)  # its follower dies mid-run: the reconciler of the next look takes over
    started_at = time.time()
    for run_id in ids:
        final = wait_for(lambda: (s := _show(cli, run_id))["status"] not in ("queued", "running") and s,
                         timeout=180, interval=0.5)
        assert final["status"] == "succeeded" and final["metric_points"] == 3, final
    elapsed = time.time() - started_at
    calls = [float(line.split()[0]) for line in hpc.read_text().splitlines()]
    assert calls, "squeue was never called"
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    # one call per 2 s interval for the cluster, whatever the number of followers
    assert len(calls) <= elapsed / 2 + 3 and all(g >= 1.5 for g in gaps), (len(calls), elapsed, gaps)


def test_bad_slurm_settings_are_one_line(cli, remote_env, tmp_path):
    assert_one_line_error(cli("machines", "add", "x", "--slurm", remote_env.gpu.ssh, "--time", "soon"), "--time 'soon'")
    assert_one_line_error(cli("machines", "add", "x", "--slurm", remote_env.gpu.ssh, "--poll", "0"), "--poll")
    assert_one_line_error(cli("machines", "add", "x", "--ssh", remote_env.gpu.ssh, "--partition", "gpu"),
                          "are for a Slurm machine")
    assert_one_line_error(cli("machines", "add", "x", "--slurm", remote_env.gpu.ssh, "--ssh", remote_env.gpu.ssh),
                          "not both")


def test_the_machines_screen_shows_the_cluster_from_sinfo(cli, hpc):
    from workbench.services import Workbench
    from workbench.services.slurm import summarize
    from workbench.tui.screens.machines import host_block

    wb = Workbench()
    try:
        cluster = wb.cluster("hpc")
        part = cluster["partitions"]["gpu"]
        assert part["default"] and part["gpus"] == 2 and sum(part["nodes"].values()) == 1, cluster
        block = host_block(next(m for m in wb.list_machines() if m.name == "hpc"), {"cluster": cluster})
        assert "Slurm cluster via" in block and "gpu (default)" in block and "of 2" in block
    finally:
        wb.close()
    # sinfo's gres forms: typed, with socket or index details, none
    parsed = summarize("gpu*|mixed|gpu:a100:4(S:0-1)|gpu:a100:1(IDX:0)|\ncpu|idle|(null)|gpu:0|\n")["partitions"]
    assert parsed["gpu"]["gpus"] == 4 and parsed["gpu"]["gpus_used"] == 1 and parsed["cpu"]["gpus"] == 0


def test_a_grid_sweep_on_the_cluster_is_one_job_array(cli, make_project, hpc):
    root = make_project(SPEC.replace("pause = 0.2", "pause = 2") + '[experiments.train.sweep]\nlr = [0.1, 0.2, 0.3]\n'
                        'objective = "loss"\ndirection = "minimize"\nmax_parallel = 2\n')
    started = cli("sweep", str(root), "--machine", "hpc", "--json")
    assert started.code == 0, started.err
    sweep_id = started.json()["id"]
    done = wait_for(lambda: (s := cli("sweeps", "show", sweep_id, "--json").json())["status"] != "running" and s,
                    timeout=240, interval=1)
    assert done["status"] == "done" and done["progress"] == {"succeeded": 3}, done
    arrays, held = set(), []
    for trial in done["trials"]:
        shown = _show(cli, trial["id"])
        array, task = shown["slurm_job"].split("_")
        arrays.add(array)
        assert shown["executor"] == "slurm" and array.isdigit() and task in ("0", "1", "2")
        assert any(e["kind"] == "placed" and "one job array" in e["message"] for e in shown["events"])
        held += [e["message"] for e in shown["events"] if e["kind"] == "pending"]
        assert f"lr={shown['params']['lr']}" in cli("runs", "logs", trial["id"]).out
        started = json.loads((hpc.parent / "shared" / "runs" / trial["id"] / "pid").read_text())
        assert started["job"] == shown["slurm_job"]  # each task names its own job: adopted by it if need be
    assert len(arrays) == 1  # one sbatch for the sweep
    assert any("JobArrayTaskLimit" in m for m in held), held  # max_parallel = 2, kept by Slurm


def test_a_random_sweep_as_an_array_is_cancelled_at_once_pending_tasks_included(cli, make_project, hpc, home):
    root = make_project(SPEC.replace("pause = 0.2", "pause = 30") + '[experiments.train.sweep]\n'
                        'method = "random"\nsamples = 3\nlr = { low = 0.001, high = 0.1, log = true }\n'
                        'max_parallel = 1\n')
    started = cli("sweep", str(root), "--machine", "hpc", "--json")
    assert started.code == 0, started.err
    sweep_id = started.json()["id"]

    def trials():
        return cli("sweeps", "show", sweep_id, "--json").json()["trials"]

    wait_for(lambda: any(_show(cli, t["id"])["metric_points"] >= 1 for t in trials()), timeout=90, interval=1)
    jobs = {_show(cli, t["id"])["slurm_job"] for t in trials()}
    assert len({j.split("_")[0] for j in jobs}) == 1 and len(jobs) == 3
    # the dispatcher starts the running task's follower once the shared squeue answer says it runs
    followed = wait_for(lambda: [t["id"] for t in trials() if _follower_of(home, t["id"])], timeout=20, interval=0.5)
    assert len(followed) == 1, followed  # the running task only: those Slurm holds need no process yet
    took = time.monotonic()
    assert cli("sweeps", "cancel", sweep_id).code == 0
    took = time.monotonic() - took
    shown = cli("sweeps", "show", sweep_id, "--json").json()
    assert shown["status"] == "cancelled" and {t["status"] for t in shown["trials"]} == {"cancelled"}, shown
    assert took < 20, took  # the two tasks Slurm never started end at once (not after a wait for each)
    array = next(iter(jobs)).split("_")[0]
    left = subprocess.run(["squeue", "-h", "--array", "-j", array, "-t", "R,PD"], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_a_requeued_job_stays_one_run_with_the_requeue_as_an_event(cli, make_project, hpc):
    root = make_project(SPEC.replace("pause = 0.2", "pause = 20"))
    started = cli("run", str(root), "--machine", "hpc", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    wait_for(lambda: _show(cli, run_id)["metric_points"] >= 1, timeout=60, interval=0.3)
    job = _show(cli, run_id)["slurm_job"]
    subprocess.run(["scontrol", "requeue", job], check=True)  # what a preemption or node failure does
    requeued = wait_for(lambda: (s := _show(cli, run_id)) and any(e["kind"] == "requeued" for e in s["events"]) and s,
                        timeout=60, interval=0.5)
    assert requeued["status"] == "running" and requeued["status_reason"].startswith("Slurm: PENDING"), requeued
    time.sleep(5)  # the killed attempt wrote an exit record: the run still did not end
    assert _show(cli, run_id)["status"] == "running"
    assert cli("runs", "cancel", run_id).code == 0
    final = wait_for(lambda: (s := _show(cli, run_id))["status"] not in ("queued", "running") and s, timeout=60,
                     interval=0.5)
    assert final["status"] == "cancelled", final


def test_a_job_killed_without_its_record_and_forgotten_by_squeue_ends_as_slurms_accounting_says(
        cli, make_project, hpc, home):
    """The job's batch shell is killed with SIGKILL (what the OOM killer or a dying node does): no exit record.
    Its follower is dead too, and by the time Workbench looks again squeue has forgotten the job (the test
    cluster's MinJobAge is 10 s): the run ends as Slurm's accounting (sacct, through slurmdbd) recorded it,
    with the metrics it wrote, instead of being recorded lost."""
    import signal
    import sqlite3

    root = make_project(SPEC.replace("pause = 0.2", "pause = 1").replace("for i in 1 2 3;", "for i in $(seq 60);"))
    started = cli("run", str(root), "--machine", "hpc", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    wait_for(lambda: _show(cli, run_id)["metric_points"] >= 2, timeout=60, interval=0.3)
    job = _show(cli, run_id)["slurm_job"]
    for pid in background_pids(home):  # nothing of Workbench looks while the job dies and is forgotten
        os.kill(pid, signal.SIGKILL)
    stepd = subprocess.run(["pgrep", "-f", f"slurmstepd: \\[{job}.batch\\]"], capture_output=True, text=True).stdout.split()
    assert stepd, f"no batch step of job {job}"
    assert kill_job_processes(int(stepd[0])), "the job's batch shell was not found"
    wait_for(lambda: subprocess.run(["squeue", "-h", "-j", job, "--states=all"], capture_output=True,
                                    text=True).stdout.strip() == "", timeout=120, interval=1)
    run_dir = hpc.parent / "shared" / "runs" / run_id
    assert (run_dir / "job_id").exists() and not (run_dir / "exit_code").exists()
    with sqlite3.connect(home / "workbench.db") as db:  # no Workbench process has looked since the kill
        assert db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0] == "running"
    final = wait_for(lambda: (s := _show(cli, run_id))["status"] not in ("queued", "running") and s, timeout=60,
                     interval=0.5)
    assert final["status"] == "failed", final
    assert "killed by signal 9 (SIGKILL)" in final["status_reason"] and "Slurm FAILED" in final["status_reason"], final
    assert final["metric_points"] >= 2
    asked = (hpc.parent / SACCT_LOG).read_text().splitlines()
    assert asked and all(job in line for line in asked), asked


def test_a_job_whose_submit_died_before_writing_its_id_is_adopted_by_name_and_comment(cli, make_project, hpc):
    """The submit wrote job.sh and called sbatch, then died before `job_id` was written: reconcile still finds
    the job, by the name and comment it was submitted with (and no other Workbench's job of that name)."""
    from workbench.execution.base import BackendSettings
    from workbench.services import Workbench

    root = make_project(SPEC.replace("pause = 0.2", "pause = 10"))
    started = cli("run", str(root), "--machine", "hpc", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    job = wait_for(lambda: _show(cli, run_id).get("slurm_job"), timeout=60, interval=0.3)
    run_dir = hpc.parent / "shared" / "runs" / run_id
    (run_dir / "job_id").unlink()
    wb = Workbench()
    try:
        executor = wb._services.executors.for_run(wb._services.store.get_run(run_id))
        wait_for(lambda: (run_dir / "pid").exists(), timeout=30)
        assert executor.adopt(run_id, str(run_dir)).job == job  # the id the job wrote when it started
        (run_dir / "pid").rename(run_dir / "pid.aside")
        assert executor.adopt(run_id, str(run_dir)).job == job  # asked of squeue now, by name
        assert executor.adopt("0badc0de", str(run_dir.parent / "0badc0de")) is None  # never submitted
        (run_dir / "job_id").write_text("")  # a write cut short: found by name all the same
        assert executor.adopt(run_id, str(run_dir)).job == job
        other = type(executor)(executor.machine, executor.host, BackendSettings("another-instance", notes=executor.notes))
        assert other.adopt(run_id, str(run_dir)) is None  # same name, another Workbench's comment
        (run_dir / "pid.aside").rename(run_dir / "pid")
    finally:
        wb.close()
    assert cli("runs", "cancel", run_id).code == 0


def test_a_failing_experiment_fails_with_its_exit_code_and_so_does_its_job(cli, make_project, hpc):
    """The batch script exits with the experiment's code: the run says the code (not Slurm's FAILED in its
    place), and Slurm's accounting records the same code for the job."""
    root = make_project(SPEC.replace('command = ["sh", "-c", "echo gpus', 'command = ["sh", "-c", "exit 3; echo gpus'))
    done = cli("run", str(root), "--machine", "hpc", "--wait", "--json", timeout=120)
    assert done.code == 1, done.err
    shown = _show(cli, done.json()["id"])
    assert shown["status"] == "failed" and shown["exit_code"] == 3 and shown["status_reason"] == "exit code 3", shown
    accounted = subprocess.run(["sacct", "-n", "-P", "-X", "-j", shown["slurm_job"], "-o", "State,ExitCode"],
                               capture_output=True, text=True).stdout.strip()
    assert accounted == "FAILED|3:0", accounted
