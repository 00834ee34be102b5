"""The job runner's figures, on the remote test env (tests/remote_hosts.py: a second Docker engine on
this machine behind a loopback sshd, with a stand-in nvidia-smi reporting as many H100s as asked). Needs
root, dockerd, sshd, ip, iptables and the main engine's busybox:latest; holds the remote env's lock.

    python benchmarks/job_runner.py [-n 5] [--records 5000] [--skip dispatch,record]

Prints:
  1. dispatch: a fleet of one GPU; run A holds it (`--machine auto`, sleeps 3 s), run B is queued behind it.
     From A's container exiting (the engine's State.FinishedAt) to B's container running (StartedAt), with
     no CLI alive (A's follower records the end, the detached dispatcher places and launches B); also from
     A's recorded finished_at. Median and worst of -n.               Target: <= 1.5 s.
  2. recording queued runs through the service layer, the fleet's GPU busy so they stay queued: a grid
     sweep of --records trials (`Workbench.sweep`: every trial recorded in one transaction), and --singles
     runs queued one at a time (`launch.enqueue`, what `run --machine auto` does when nothing is free: a
     snapshot look, the git record, the run and its events, the dispatcher checked).
                                                                     Target: >= 1,000 runs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from remote_hosts import (State, acquire_lock, build, clean_up_after_crashed_session, register,  # noqa: E402
                          release_lock, tear_down)
from helpers import background_pids, wait_for  # noqa: E402
from remote_runs import Cli, container_of, engine_time  # noqa: E402

SPEC = """
[project]
name = "bench-queue"
[experiments.gpu]
image = "busybox:latest"
command = ["sleep", "{seconds}"]
params = { seconds = 1.0 }
gpus = 1
machine = "auto"
"""


def dispatch_figures(cli: Cli, project: Path, env, n: int) -> dict:
    (env.gpu.dir / "gpu-count").write_text("1")
    from_exit, from_record = [], []
    for _ in range(n):
        first = cli("run", str(project), "-e", "gpu", "-p", "seconds=3", "--json")
        assert first.code == 0 and first.json()["status"] == "running", first.err
        second = cli("run", str(project), "-e", "gpu", "--json")
        assert second.code == 0 and second.json()["status"] == "queued", second.out + second.err
        a, b = first.json()["id"], second.json()["id"]
        container_a = container_of(env.docker, a)
        exited = wait_for(lambda: _finished_at(container_a), timeout=60, interval=0.01)  # before it is removed
        container_b = wait_for(lambda: _container(env.docker, b), timeout=60)
        wait_for(lambda: _running_or_done(container_b), timeout=60)
        started = engine_time(container_b.attrs["State"]["StartedAt"])
        recorded = cli("runs", "show", a, "--json").json()["finished_at"]
        from_exit.append(started - exited)
        from_record.append(started - recorded)
        wait_for(lambda: cli("runs", "show", b, "--json").json()["status"] == "succeeded", timeout=60)
    return {"exit_to_next_container_running_s": {"median": round(statistics.median(from_exit), 3),
                                                  "max": round(max(from_exit), 3)},
            "recorded_end_to_next_container_running_s": {"median": round(statistics.median(from_record), 3),
                                                         "max": round(max(from_record), 3)},
            "n": n, "target": "<= 1.5 s"}


def _container(client, run_id: str):
    found = client.containers.list(all=True, filters={"label": f"workbench.run-id={run_id}"})
    return found[0] if found else None


def _finished_at(container) -> float | None:
    container.reload()
    state = container.attrs["State"]
    return engine_time(state["FinishedAt"]) if state["Status"] == "exited" else None


def _running_or_done(container) -> bool:
    container.reload()
    return container.attrs["State"]["StartedAt"] not in ("", "0001-01-01T00:00:00Z")


def record_figures(project: Path, count: int, singles: int) -> dict:
    """Queued runs recorded through the service layer, into a data dir whose dispatcher finds every GPU busy
    (it waits, as in real life, instead of starting them): a grid sweep of `count` trials (what queues many
    runs at once), and `singles` runs queued one `launch` at a time (each with its own snapshot look, git
    record and dispatcher check)."""
    from workbench.projects.spec import load_spec
    from workbench.services import Workbench
    from workbench.services.launch import enqueue

    values = ", ".join(str(i) for i in range(count))
    (project / "workbench.toml").write_text(SPEC + f"[experiments.gpu.sweep]\nseconds = [{values}]\n")
    wb = Workbench()
    wb.progress = lambda _message: None  # type: ignore[method-assign]
    started = time.perf_counter()
    wb.sweep(str(project), "gpu", machine="gpu-a")
    swept = time.perf_counter() - started
    spec = load_spec(str(project))
    exp = spec.experiment("gpu")
    request = {"machines": ["gpu-a"], "gpus": 1, "executor": None}
    started = time.perf_counter()
    for _ in range(singles):
        enqueue(wb._services, spec, exp, dict(exp.params), request, "waiting for 1 free GPU on gpu-a")
    single = time.perf_counter() - started
    queued = len(wb._services.store.waiting_runs())
    wb.close()
    return {"sweep_trials": count, "sweep_seconds": round(swept, 2), "sweep_runs_per_s": round(count / swept),
            "single_runs": singles, "single_runs_per_s": round(singles / single), "queued_now": queued,
            "target": ">= 1,000 runs/s"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--records", type=int, default=5000, help="trials of the sweep of figure 2")
    parser.add_argument("--singles", type=int, default=500, help="runs queued one at a time in figure 2")
    parser.add_argument("--skip", default="", help="comma-separated figures to skip: dispatch,record")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if os.geteuid() != 0:
        raise SystemExit("needs root (the remote env makes a bridge, iptables rules and network namespaces)")
    scratch = Path(tempfile.mkdtemp(prefix="wb-bench-queue-"))
    home = scratch / "home"
    home.mkdir()
    os.environ["WORKBENCH_HOME"] = str(home)
    os.environ.pop("WORKBENCH_DEBUG", None)
    cli = Cli(home)
    project = scratch / "project"
    project.mkdir()
    (project / "workbench.toml").write_text(SPEC)
    result: dict[str, object] = {}
    lock = acquire_lock()
    state, env = State(), None
    try:
        clean_up_after_crashed_session()
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        env = build(state)
        register(cli, "gpu-a", env.gpu, env.user_key, extra=("--dir", str(scratch / "host")))
        if "dispatch" not in skip:
            result["1_dispatch"] = dispatch_figures(cli, project, env, args.n)
        if "record" not in skip:
            (env.gpu.dir / "gpu-apps.csv").write_text(f"{env.gpu_uuids[0]}, 4000, python3, 30000\n")  # busy
            result["2_record_queued"] = record_figures(project, args.records, args.singles)
    finally:
        for pid in background_pids(home):  # its dispatcher and followers go with its data dir
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        try:
            for name in ("gpu-count", "gpu-apps.csv"):
                if env is not None:
                    (env.gpu.dir / name).unlink(missing_ok=True)
            tear_down(env, state)
        finally:
            release_lock(lock)
            shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
