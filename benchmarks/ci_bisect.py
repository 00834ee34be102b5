"""`ci bisect` over 64 commits, one of them (at a seeded random position) dropping acc below the check (issue
25: with 1 GPU, <= 7 runs).

    python benchmarks/ci_bisect.py [--commits 64] [--seed 25] [--parallel 4] [--tries 3] [--train-seconds 2]
Each try makes a git repository (git CLI) whose busybox experiment trains (sleeps) --train-seconds and
writes the acc its commit holds, and
bisects it in a fresh data dir one commit at a time (what 1 free GPU gives) and then, in another fresh data
dir, --parallel commits at a time: runs started, rounds, wall time (every run goes through the queue and the
dispatcher onto this machine's Docker engine)."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

SPEC = """[project]
name = "bisect-bench"

[experiments.train]
image = "busybox:latest"
command = ["sh", "train.sh"]
checks = { acc = ">= 0.9" }
"""
TRAIN = 'sleep {seconds}\necho "{{\\"step\\": 1, \\"acc\\": $(cat acc.txt)}}" >> "$WORKBENCH_METRICS"\n'
GIT_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@localhost", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "bench@localhost"}


def git(top: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=top, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def make_repo(top: Path, commits: int, breaks_at: int, seconds: float) -> tuple[str, str]:
    """GOOD and BAD: `commits` commits after GOOD, the first with acc < 0.9 at `breaks_at` (1-based)."""
    top.mkdir(parents=True)
    git(top, "init", "-q", "-b", "main")
    (top / "workbench.toml").write_text(SPEC)
    (top / "train.sh").write_text(TRAIN.format(seconds=seconds))
    (top / "acc.txt").write_text("0.99\n")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "GOOD")
    good = git(top, "rev-parse", "HEAD")
    for n in range(1, commits + 1):
        acc = 0.99 - n / 10000 if n < breaks_at else 0.5 - n / 10000  # each commit its own tree
        (top / "acc.txt").write_text(f"{acc}\n")
        git(top, "commit", "-q", "-am", f"commit {n}")
    return good, git(top, "rev-parse", "HEAD")


def bisect_once(work: Path, name: str, commits: int, breaks_at: int, parallel: int,
                seconds: float) -> dict[str, object]:
    home = work / f"home-{name}"
    home.mkdir()
    os.environ["WORKBENCH_HOME"] = str(home)
    from workbench.services import Workbench

    good, bad = make_repo(work / name, commits, breaks_at, seconds)
    wb = Workbench()
    began = time.perf_counter()
    result = wb.ci_bisect(str(work / name), good, bad, lambda line: None, parallel=parallel)
    wall = time.perf_counter() - began
    expected = git(work / name, "rev-list", "--reverse", "--first-parent", f"{good}..{bad}").split()[breaks_at - 1]
    assert result.first_bad == expected, (result.first_bad, expected)
    return {"runs": result.runs, "rounds": result.rounds, "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=64)
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--train-seconds", type=float, default=2.0, help="how long each run trains (a sleep)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="wb-bench-bisect-"))
    tries = []
    for n in range(args.tries):
        breaks_at = rng.randint(1, args.commits)
        one = bisect_once(work, f"one-{n}", args.commits, breaks_at, 1, args.train_seconds)
        many = bisect_once(work, f"many-{n}", args.commits, breaks_at, args.parallel, args.train_seconds)
        tries.append({"breaks_at": breaks_at, "one_at_a_time": one, f"parallel_{args.parallel}": many})
    print(json.dumps({
        "commits": args.commits, "seed": args.seed, "train_seconds": args.train_seconds, "tries": tries,
        "max_runs_one_at_a_time": max(t["one_at_a_time"]["runs"] for t in tries),
        "median_wall_one_at_a_time_s": statistics.median(t["one_at_a_time"]["wall_s"] for t in tries),
        f"median_wall_parallel_{args.parallel}_s": statistics.median(
            t[f"parallel_{args.parallel}"]["wall_s"] for t in tries),
        "target": f"<= 7 runs with 1 GPU (ceil(log2({args.commits})) = {math.ceil(math.log2(args.commits))})",
    }, indent=2))


if __name__ == "__main__":
    main()
