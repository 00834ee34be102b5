"""The job runner's figures, on the remote test env (tests/remote/remote_hosts.py: a second Docker engine on
this machine behind a loopback sshd, with a stand-in nvidia-smi reporting as many H100s as asked). Needs
root, dockerd, sshd, ip, iptables and the main engine's busybox:latest; holds the remote env's lock.

    python benchmarks/job_runner.py [-n 5] [--records 5000] [--skip dispatch,record]

Prints:
  1. dispatch: a fleet of one GPU; run A holds it (`--machine auto`, sleeps 1 s), run B is queued behind it.
     From A's container exiting (the engine's State.FinishedAt) to B's container running (StartedAt), with
     no CLI alive (A's follower records the end, the detached dispatcher places and launches B); also from
     A's recorded finished_at. Median and worst of -n.               Target: <= 1.5 s.
  2. recording queued runs through the service layer (`workbench.services.launch.enqueue`, what `run
     --machine auto` does when nothing is free: a snapshot of the unchanged project, the record, its
     event, the dispatcher looked for), --records runs into one data dir.   Target: >= 1,000 runs/s.
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
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "remote"), str(REPO / "tests" / "machines"),
                str(REPO / "benchmarks")]

from remote_hosts import (State, acquire_lock, build, clean_up_after_crashed_session, register,  # noqa: E402
                          release_lock, tear_down)
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


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit("timed out")


def dispatch_figures(cli: Cli, project: Path, env, n: int) -> dict:
    (env.gpu.dir / "gpu-count").write_text("1")
    from_exit, from_record = [], []
    for _ in range(n):
        first = cli("run", str(project), "-e", "gpu", "--json")
        assert first.code == 0 and first.json()["status"] == "running", first.err
        second = cli("run", str(project), "-e", "gpu", "--json")
        assert second.code == 0 and second.json()["status"] == "queued", second.out + second.err
        a, b = first.json()["id"], second.json()["id"]
        container_b = wait_until(lambda: _container(env.docker, b), timeout=60)
        wait_until(lambda: _running_or_done(container_b), timeout=60)
        container_a = container_of(env.docker, a)
        container_a.reload()
        exited = engine_time(container_a.attrs["State"]["FinishedAt"])
        started = engine_time(container_b.attrs["State"]["StartedAt"])
        recorded = cli("runs", "show", a, "--json").json()["finished_at"]
        from_exit.append(started - exited)
        from_record.append(started - recorded)
        wait_until(lambda: cli("runs", "show", b, "--json").json()["status"] == "succeeded", timeout=60)
    return {"exit_to_next_container_running_s": {"median": round(statistics.median(from_exit), 3),
                                                  "max": round(max(from_exit), 3)},
            "recorded_end_to_next_container_running_s": {"median": round(statistics.median(from_record), 3),
                                                         "max": round(max(from_record), 3)},
            "n": n, "target": "<= 1.5 s"}


def _container(client, run_id: str):
    found = client.containers.list(all=True, filters={"label": f"workbench.run-id={run_id}"})
    return found[0] if found else None


def _running_or_done(container) -> bool:
    container.reload()
    return container.attrs["State"]["StartedAt"] not in ("", "0001-01-01T00:00:00Z")


def record_figures(project: Path, count: int) -> dict:
    from workbench.projects.spec import load_spec
    from workbench.services import Workbench
    from workbench.services.launch import enqueue

    wb = Workbench()
    wb.progress = lambda _message: None  # type: ignore[method-assign]
    spec = load_spec(str(project))
    exp = spec.experiment("gpu")
    request = {"machines": ["nowhere"], "gpus": 1, "executor": None}
    started = time.perf_counter()
    for _ in range(count):
        enqueue(wb, spec, exp, dict(exp.params), request, "waiting for 1 free GPU on nowhere")
    elapsed = time.perf_counter() - started
    wb.close()
    return {"runs": count, "seconds": round(elapsed, 2), "runs_per_s": round(count / elapsed),
            "target": ">= 1,000 runs/s"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5)
    parser.add_argument("--records", type=int, default=5000)
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
            result["2_record_queued"] = record_figures(project, args.records)
    finally:
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
