"""Slurm figures (issue 13), on the single-node cluster .ci/slurm.sh starts, its login node the SSH test host
of the remote test env (tests/remote_hosts.py; needs root, the remote env's tools, and `sinfo` answering):
  1. submit → RUNNING: from `workbench run --machine hpc` being called to the job's batch script starting
     (the `pid` record it writes first), and → the first metric point ingested into the history. -n runs.
  2. squeue calls per minute with --queued runs queued behind two jobs holding both GPUs, each run followed
     by its own detached follower, the cluster polled every --poll seconds: counted by a wrapper on the
     login node's PATH. Target: the poll rate (60 / --poll), not the run count.
  3. A --trials grid sweep as one job array (max_parallel 2): from `workbench sweep` to every trial submitted
     (each run holds its array task's job id), the sbatch calls that took (counted by a wrapper), and
     `sweeps cancel` of it with most tasks still pending.
  4. --unseen runs whose jobs are killed with SIGKILL (no exit records) while nothing of Workbench looks
     (their followers killed while Slurm held them), then forgotten by squeue (MinJobAge): from the next
     `workbench runs list` to every run recorded as Slurm's accounting says it ended, and the sacct calls.

    python benchmarks/slurm.py [-n 5] [--queued 100] [--poll 10] [--minutes 1] [--trials 100] [--unseen 20]
                               [--parts 1234]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from remote_hosts import (State, acquire_lock, build, clean_up_after_crashed_session,  # noqa: E402
                          release_lock, tear_down)
from helpers import background_pids, wait_for  # noqa: E402
from remote_runs import Cli  # noqa: E402

SPEC = """
[project]
name = "bench-slurm"
[experiments.train]
image = "python:3.11-slim"
command = ["sh", "-c", "echo '{\\"loss\\": 1}' >> $WORKBENCH_METRICS; sleep {seconds}"]
params = { seconds = 1 }
gpus = 1
"""


def start_figures(cli: Cli, project: Path, shared: Path, n: int) -> dict:
    to_running, to_metric = [], []
    for _ in range(n):
        called = time.time()
        done = cli("run", str(project), "--machine", "hpc", "--json")
        assert done.code == 0, done.err
        run_id = done.json()["id"]
        pid = shared / "runs" / run_id / "pid"
        started = wait_for(lambda: pid.exists() and json.loads(pid.read_text() or "{}").get("started_at"),
                           timeout=60, interval=0.02)
        to_running.append(float(started) - called)  # the batch script's clock: whole seconds
        wait_for(lambda: cli("runs", "show", run_id, "--json").json()["metric_points"] >= 1, timeout=60,
                 interval=0.05)
        to_metric.append(time.time() - called)
        wait_for(lambda: cli("runs", "show", run_id, "--json").json()["status"] == "succeeded", timeout=60)
    return {"submit_to_running_s": {"median": round(statistics.median(to_running), 2), "max": round(max(to_running), 2),
                                    "note": "the job's start time has whole-second resolution"},
            "submit_to_first_metric_ingested_s": {"median": round(statistics.median(to_metric), 2),
                                                  "max": round(max(to_metric), 2)}, "n": n}


def poll_figures(cli: Cli, project: Path, log: Path, queued: int, poll: float, minutes: float) -> dict:
    blockers = [subprocess.run(["sbatch", "--parsable", "--gres=gpu:1", "--output=/dev/null", "--wrap", "sleep 600"], capture_output=True,
                               text=True, check=True).stdout.strip() for _ in range(2)]
    try:
        ids = []
        for _ in range(queued):
            done = cli("run", str(project), "--machine", "hpc", "-p", "seconds=1", "--json")
            assert done.code == 0, done.err
            ids.append(done.json()["id"])
        time.sleep(poll * 2)  # every follower is up and looking
        before = len(log.read_text().splitlines()) if log.exists() else 0
        time.sleep(minutes * 60)
        calls = (len(log.read_text().splitlines()) if log.exists() else 0) - before
        pending = sum(1 for r in ids if (cli("runs", "show", r, "--json").json().get("status_reason") or "")
                      .startswith("Slurm: PENDING"))
        return {"queued_runs": queued, "followers": len(background_pids(Path(os.environ["WORKBENCH_HOME"]), (b"_follow",))),
                "pending_with_reason": pending, "poll_s": poll, "squeue_calls_per_minute": round(calls / minutes, 1),
                "target": f"= the poll rate ({60 / poll:.0f}/min), not the run count"}
    finally:
        subprocess.run(["scancel", *blockers], capture_output=True)
        subprocess.run(["scancel", "--user=root"], capture_output=True)  # the queued runs' jobs too


def array_figures(cli: Cli, project: Path, sbatch_log: Path, trials: int) -> dict:
    spec = project / "workbench.toml"
    spec.write_text(SPEC.replace("params = { seconds = 1 }", "params = { seconds = 5, i = 0 }")
                    + f"[experiments.train.sweep]\ni = {list(range(trials))}\nmax_parallel = 2\n")
    before = len(sbatch_log.read_text().splitlines()) if sbatch_log.exists() else 0
    called = time.monotonic()
    started = cli("sweep", str(project), "--machine", "hpc", "--json")
    assert started.code == 0, started.err
    sweep_id = started.json()["id"]

    def submitted() -> bool:
        shown = cli("sweeps", "show", sweep_id, "--json").json()["trials"]
        return len(shown) == trials and all(t["status"] == "running" for t in shown)

    try:
        wait_for(submitted, timeout=300, interval=0.2)
    except AssertionError:
        home = Path(os.environ["WORKBENCH_HOME"])
        print((home / "dispatcher.err").read_text()[-3000:] if (home / "dispatcher.err").exists() else "-",
              file=sys.stderr)
        shown = cli("sweeps", "show", sweep_id, "--json").json()
        print(json.dumps({k: shown[k] for k in ("status", "status_reason", "progress") if k in shown}),
              [(t["status"], t.get("status_reason")) for t in shown["trials"][:5]], file=sys.stderr)
        raise
    took = time.monotonic() - called
    calls = (len(sbatch_log.read_text().splitlines()) if sbatch_log.exists() else 0) - before
    cancelling = time.monotonic()
    if os.environ.get("BENCH_PROFILE"):
        subprocess.run([sys.executable, "-m", "cProfile", "-o", os.environ["BENCH_PROFILE"], "-m", "workbench",
                        "sweeps", "cancel", sweep_id], env=cli.env, check=True, capture_output=True)
    else:
        assert cli("sweeps", "cancel", sweep_id).code == 0
    cancelled = time.monotonic() - cancelling
    statuses = {t["status"] for t in cli("sweeps", "show", sweep_id, "--json").json()["trials"]}
    return {"trials": trials, "sweep_to_all_submitted_s": round(took, 2), "sbatch_calls": calls,
            "cancel_sweep_s": round(cancelled, 2), "statuses_after_cancel": sorted(statuses)}


def unseen_figures(cli: Cli, project: Path, sacct_log: Path, count: int) -> dict:
    """Runs queued behind two jobs holding both GPUs, their followers killed; then each job, once Slurm
    starts it, writes a metric and has its batch shell killed with SIGKILL (no exit record)."""
    spec = project / "workbench.toml"
    spec.write_text(SPEC.replace("sleep {seconds}", "sleep {seconds}; kill -9 $PPID"))
    blockers = [subprocess.run(["sbatch", "--parsable", "--gres=gpu:1", "--output=/dev/null", "--wrap", "sleep 600"],
                               capture_output=True, text=True, check=True).stdout.strip() for _ in range(2)]
    ids = []
    for _ in range(count):
        done = cli("run", str(project), "--machine", "hpc", "--json")
        assert done.code == 0, done.err
        ids.append(done.json()["id"])
    jobs = [wait_for(lambda r=r: cli("runs", "show", r, "--json").json().get("slurm_job"), timeout=120) for r in ids]
    for pid in background_pids(Path(os.environ["WORKBENCH_HOME"])):  # nothing of Workbench looks from here
        os.kill(pid, 9)
    subprocess.run(["scancel", *blockers], check=True)
    wait_for(lambda: not subprocess.run(["squeue", "-h", "--states=all", "-j", ",".join(jobs)], capture_output=True,
                                        text=True).stdout.strip(), timeout=600, interval=1)
    before = len(sacct_log.read_text().splitlines()) if sacct_log.exists() else 0
    called = time.monotonic()

    def settled() -> bool:
        listed = {r["id"]: r for r in cli("runs", "list", "--json").json()}
        return all(listed[r]["status"] not in ("queued", "running") for r in ids)

    wait_for(settled, timeout=300, interval=0.2)
    took = time.monotonic() - called
    shown = [cli("runs", "show", r, "--json").json() for r in ids]
    return {"runs": count, "list_to_all_settled_s": round(took, 2),
            "sacct_calls": (len(sacct_log.read_text().splitlines()) if sacct_log.exists() else 0) - before,
            "statuses": sorted({s["status"] for s in shown}),
            "reasons": sorted({s.get("status_reason") or "" for s in shown}),
            "metric_points": sum(s["metric_points"] for s in shown)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--queued", type=int, default=100)
    parser.add_argument("--poll", type=float, default=10)
    parser.add_argument("--minutes", type=float, default=1)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--parts", default="1234", help="which figures, e.g. 4")
    parser.add_argument("--unseen", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("sinfo"):
        raise SystemExit("needs root and a Slurm cluster (bash .ci/slurm.sh)")
    scratch = Path(tempfile.mkdtemp(prefix="wb-bench-slurm-"))
    home = scratch / "home"
    home.mkdir()
    os.environ["WORKBENCH_HOME"] = str(home)
    os.environ.pop("WORKBENCH_DEBUG", None)
    cli = Cli(home)
    project = scratch / "project"
    project.mkdir()
    (project / "workbench.toml").write_text(SPEC)
    shared = scratch / "shared"
    log = scratch / "squeue-calls.log"
    result: dict[str, object] = {}
    lock = acquire_lock()
    state, env = State(), None
    wrapper = sbatch_wrapper = sacct_wrapper = None
    sbatch_log = scratch / "sbatch-calls.log"
    sacct_log = scratch / "sacct-calls.log"
    try:
        clean_up_after_crashed_session()
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        env = build(state)
        first = env.ssh(env.gpu, "echo $PATH").stdout.strip().split(":")[0]
        wrapper = Path(first) / "squeue"
        wrapper.write_text(f"#!/bin/sh\necho \"$(date +%s.%N)\" >> {log}\nexec /usr/bin/squeue \"$@\"\n")
        wrapper.chmod(0o755)
        sbatch_wrapper = Path(first) / "sbatch"
        sbatch_wrapper.write_text(f"#!/bin/sh\necho \"$(date +%s.%N)\" >> {sbatch_log}\nexec /usr/bin/sbatch \"$@\"\n")
        sbatch_wrapper.chmod(0o755)
        sacct_wrapper = Path(first) / "sacct"
        sacct_wrapper.write_text(f"#!/bin/sh\necho \"$(date +%s.%N)\" >> {sacct_log}\nexec /usr/bin/sacct \"$@\"\n")
        sacct_wrapper.chmod(0o755)
        added = cli("machines", "add", "hpc", "--slurm", env.gpu.ssh, "--identity", str(env.user_key), "--dir",
                    str(shared), "--poll", str(args.poll), "--json")
        assert added.code == 0, added.err
        assert cli("machines", "trust", "hpc", "--fingerprint", env.gpu.fingerprint).code == 0
        if "1" in args.parts:
            result["1_start"] = start_figures(cli, project, shared, args.n)
        if "2" in args.parts:
            result["2_polling"] = poll_figures(cli, project, log, args.queued, args.poll, args.minutes)
        if "3" in args.parts:
            result["3_array"] = array_figures(cli, project, sbatch_log, args.trials)
        if "4" in args.parts:
            result["4_unseen_ends"] = unseen_figures(cli, project, sacct_log, args.unseen)
    finally:
        for pid in background_pids(home):
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        subprocess.run(["scancel", "--user=root"], capture_output=True)
        for made in (wrapper, sbatch_wrapper, sacct_wrapper):
            if made is not None:
                made.unlink(missing_ok=True)
        try:
            tear_down(env, state)
        finally:
            release_lock(lock)
            shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
