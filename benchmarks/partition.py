"""A silent partition of an SSH host in the middle of a run: what a user waits for while it lasts and after.
The "host" is the remote test env (tests/remote_hosts.py: a second Docker engine that only a loopback
sshd at 127.0.0.3 reaches); the partition is an iptables DROP of that sshd's port (packets vanish, nothing
refuses: how a Wi-Fi drop looks), always removed at the end. Needs root, as the remote tests do; holds the
remote env's lock while it runs.

    python benchmarks/partition.py [-n 3] [--silence 25] [--executor docker|process]

Prints, per try and as medians over -n tries (each: a run printing numbered lines on the host, partitioned
after a few seconds, healed after --silence seconds):
  1. local reads while the host is silent: `runs list`, `runs show ID`, `queue`, whole processes (max and
     median).                                               Target: <= 1.5 s.
  2. partition -> the run shows "host unreachable since T".   Target: <= 15 s.
  3. a command that must reach the host (`machines stats`, `runs cancel` of another run there) -> its exit,
     with one line.                                          Target: <= 5 s.
  4. heal -> the run's follower has caught up (the run's points grow again) and, once the run ended, how long
     any follower process of it lived on (0: none outlived the run).  Target: no follower lingers.
  5. exactly once: the stored log lines and metric points against what the run printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "services" / "remote")]

from helpers import Result  # noqa: E402
from remote_hosts import (State, acquire_lock, build, clean_up_after_crashed_session, register,  # noqa: E402
                          release_lock, tear_down)
from test_remote_faults import _follower_pids  # noqa: E402  (a zombie's cmdline is empty: not counted)

MACHINE = "gpu-a"
LINES = 80
SPEC = f"""
[project]
name = "bench-partition"
[experiments.count]
image = "busybox:latest"
command = ["sh", "-c", "i=1; while [ $i -le {{n}} ]; do echo line $i; echo '{{\\"step\\": '$i', \\"x\\": '$i'}}' >> $WORKBENCH_METRICS; sleep 0.5; i=$((i+1)); done"]
params = {{ n = {LINES} }}
"""


class Cli:
    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "WORKBENCH_HOME": str(home)}
        self.env.pop("WORKBENCH_DEBUG", None)

    def __call__(self, *args: str, timeout: float = 300) -> tuple[Result, float]:
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env)
        return Result(done.returncode, done.stdout, done.stderr), time.perf_counter() - began

    def show(self, run_id: str) -> dict:
        done, _ = self(*("runs", "show", run_id, "--json"))
        return done.json()


def drop(action: str, host) -> bool:
    return subprocess.run(["iptables", action, "INPUT", "-d", host.address, "-p", "tcp", "--dport", str(host.port),
                           "-j", "DROP"], capture_output=True).returncode == 0


def until(predicate, timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until predicate() held, or None."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if predicate():
            return time.perf_counter() - began
        time.sleep(interval)
    return None


def points(cli: Cli, run_id: str) -> int:
    return cli.show(run_id)["metrics"].get("x", {}).get("points", 0)


def one_try(cli: Cli, project: Path, host, executor: str, silence: float) -> dict:
    started, _ = cli("run", str(project), "--machine", MACHINE, "--executor", executor, "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    other, _ = cli("run", str(project), "--machine", MACHINE, "--executor", executor, "--json")
    other_id = other.json()["id"]
    until(lambda: points(cli, run_id) >= 8, 60)
    figures: dict = {}
    assert drop("-I", host)
    try:
        cut = time.perf_counter()
        reads: list[float] = []
        while time.perf_counter() - cut < 5:
            for args in (("runs", "list"), ("runs", "show", run_id), ("queue",)):
                done, took = cli(*args)
                assert done.code == 0 and "closed database" not in done.err, done.err
                reads.append(took)
        figures["1_read_max_s"] = round(max(reads), 3)
        figures["1_read_median_s"] = round(statistics.median(reads), 3)
        unreachable = until(lambda: (cli.show(run_id).get("status_reason") or "").startswith("host unreachable"),
                            30, 0.1)
        figures["2_to_unreachable_s"] = round(time.perf_counter() - cut, 2) if unreachable is not None else None
        stats, took = cli("machines", "stats", MACHINE)
        figures["3_machines_stats_fails_s"] = round(took, 2)
        figures["3_machines_stats_one_line"] = stats.code != 0 and len(stats.err.strip().splitlines()) == 1
        cancel, took = cli("runs", "cancel", other_id)
        figures["3_runs_cancel_fails_s"] = round(took, 2)
        figures["3_runs_cancel_one_line"] = cancel.code != 0 and len(cancel.err.strip().splitlines()) == 1
        time.sleep(max(0.0, silence - (time.perf_counter() - cut)))
        before = points(cli, run_id)
    finally:
        while drop("-D", host):
            pass
    healed = time.perf_counter()
    caught_up = until(lambda: points(cli, run_id) > before or cli.show(run_id)["status"] != "running", 60, 0.1)
    figures["4_heal_to_caught_up_s"] = round(caught_up, 2) if caught_up is not None else None
    until(lambda: cli.show(run_id)["status"] != "running", 120, 0.5)
    ended = time.perf_counter()
    gone = until(lambda: not _follower_pids(run_id), 60, 0.1)
    figures["4_follower_lived_after_run_end_s"] = round(gone, 2) if gone is not None else "still alive after 60 s"
    figures["4_heal_to_run_end_s"] = round(ended - healed, 2)
    final = cli.show(run_id)
    logs, _ = cli("runs", "logs", run_id)
    stored = [line for line in logs.out.splitlines() if line.startswith("line ")]
    figures["5_status"] = final["status"]
    figures["5_log_lines_exactly_once"] = stored == [f"line {i}" for i in range(1, LINES + 1)]
    figures["5_points"] = f"{final['metrics'].get('x', {}).get('points', 0)} of {LINES}"
    cli("runs", "cancel", other_id)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=3, help="tries")
    parser.add_argument("--silence", type=float, default=25.0, help="seconds the host stays silent")
    parser.add_argument("--executor", default="docker", choices=("docker", "process"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the remote env makes a bridge, iptables rules and network namespaces)")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="wb-bench-partition-"))
    home = scratch / "home"
    home.mkdir()
    cli = Cli(home)
    project = scratch / "project"
    project.mkdir()
    (project / "workbench.toml").write_text(SPEC)
    lock = acquire_lock()
    state, env = State(), None
    tries = []
    try:
        clean_up_after_crashed_session()
        env = build(state)
        register(lambda *a: cli(*a)[0], MACHINE, env.gpu, env.user_key, extra=("--dir", str(scratch / "host")))
        for _ in range(args.n):
            tries.append(one_try(cli, project, env.gpu, args.executor, args.silence))
            print(json.dumps(tries[-1]), flush=True)
    finally:
        try:
            tear_down(env, state)
        finally:
            release_lock(lock)
    numeric = {key for key, value in tries[0].items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
    summary = {key: statistics.median(t[key] for t in tries if isinstance(t.get(key), (int, float)))
               for key in sorted(numeric)}
    summary["all_exactly_once"] = all(t["5_log_lines_exactly_once"] for t in tries)
    summary["all_one_line"] = all(t["3_machines_stats_one_line"] and t["3_runs_cancel_one_line"] for t in tries)
    print(json.dumps({"executor": args.executor, "tries": args.n, "silence_s": args.silence,
                      "medians": summary}, indent=2))


if __name__ == "__main__":
    main()
