"""A sweep of --trials quick busybox trials on this workstation's engine (a grid, at most --parallel at once),
in a temporary data dir: the dispatcher's own CPU while the trials run, and `workbench sweeps show` of the
finished sweep end to end.

    python benchmarks/sweep_dispatcher.py [--trials 200] [--parallel 4]

Prints the dispatcher's CPU seconds (user + system, from /proc) over the sweep's wall time, as a share of one
core, and the sweep view's time.                          Target: <= 5% of one core; view <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from helpers import background_pids  # noqa: E402

SPEC = r"""
[project]
name = "bench-sweep"
[experiments.quick]
image = "busybox:latest"
command = ["sh", "-c", "echo '{\"step\": 1, \"score\": {x}}' >> $WORKBENCH_METRICS; sleep {seconds}"]
params = { x = 0, seconds = 2.0 }
machine = "local"
[experiments.quick.sweep]
x = [VALUES]
objective = "score"
max_parallel = PARALLEL
"""


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="wb-bench-sweep-"))
    home, project = scratch / "home", scratch / "project"
    home.mkdir()
    project.mkdir()
    (project / "workbench.toml").write_text(SPEC.replace("VALUES", ", ".join(str(i) for i in range(args.trials)))
                                            .replace("PARALLEL", str(args.parallel)))
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    cli = [sys.executable, "-m", "workbench"]
    started = time.monotonic()
    sweep_id = subprocess.run([*cli, "sweep", str(project), "--json"], capture_output=True, text=True, env=env,
                              check=True).stdout
    sweep_id = json.loads(sweep_id)["id"]
    pids: list[int] = []
    while not pids and time.monotonic() - started < 30:
        pids = [p for p in background_pids(home, (b"_dispatch",))]
        time.sleep(0.05)
    pid = pids[0]
    cpu, last = 0.0, cpu_seconds(pid)
    while True:
        time.sleep(0.5)
        try:
            now = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            break  # the dispatcher exited: the queue drained and the sweep is done
        cpu, last = cpu + now - last, now
    wall = time.monotonic() - started
    shown_at = time.perf_counter()
    shown = subprocess.run([*cli, "sweeps", "show", sweep_id, "--json"], capture_output=True, text=True, env=env,
                           check=True)
    view = time.perf_counter() - shown_at
    summary = json.loads(shown.stdout)
    print(json.dumps({"trials": args.trials, "max_parallel": args.parallel, "status": summary["status"],
                      "progress": summary["progress"], "wall_s": round(wall, 1),
                      "dispatcher_cpu_s": round(cpu, 2), "dispatcher_share_of_a_core": f"{cpu / wall:.1%}",
                      "sweeps_show_s": round(view, 3), "target": "<= 5% of one core; view <= 0.5 s"}, indent=2))


if __name__ == "__main__":
    main()
