"""Launch overhead: `workbench run --wait` of hello-shell against plain `docker run --rm` of the same image
and command (same bind mounts). Median of N runs each, interleaved.

    python benchmarks/launch_overhead.py [-n 10]
Target (issue 2): <= 0.3 s more than docker run.
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
HELLO = REPO / "sample_projects" / "hello-shell"


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="wb-bench-")
    env = {**os.environ, "WORKBENCH_HOME": home}
    out = Path(tempfile.mkdtemp(prefix="wb-bench-out-"))
    docker = ["docker", "run", "--rm", "--init", "-v", f"{HELLO}:/wb/src:ro", "-v", f"{out}:/wb/out",
              "-w", "/wb/src", "-e", "WORKBENCH_OUTPUT=/wb/out", "-e", "WORKBENCH_METRICS=/wb/out/metrics.jsonl",
              "-e", "WORKBENCH_RUN_ID=bench", "busybox:latest", "sh", "run.sh", "hello", "3"]
    workbench = [sys.executable, "-m", "workbench", "run", str(HELLO), "--wait"]
    timed(docker, env), timed(workbench, env)  # warm both (page cache, first snapshot, DB creation)
    plain, wb = [], []
    for _ in range(args.n):
        plain.append(timed(docker, env))
        wb.append(timed(workbench, env))
    result = {
        "runs_each": args.n,
        "docker_run_median_s": round(statistics.median(plain), 3),
        "workbench_run_wait_median_s": round(statistics.median(wb), 3),
        "overhead_median_s": round(statistics.median(wb) - statistics.median(plain), 3),
        "target": "overhead <= 0.3 s",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
