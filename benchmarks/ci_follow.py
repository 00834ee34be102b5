"""The branch follower's latencies (issue 25): a commit to its run started (<= 2 s), and a burst of 50 commits
landing at once (a pull) to one run queued and 49 skipped, all recorded (<= 3 s).

    python benchmarks/ci_follow.py [-n 5] [--burst 50]
A real git repository (made with the git CLI) whose experiment is a busybox container that writes one metric;
the follower runs in this process on a fresh data dir. "Started" is the run's recorded start (taken right after
the engine started its container); a commit's time is taken just before `git commit` runs."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from helpers import background_pids, wait_for  # noqa: E402

SPEC = """[project]
name = "cibench"

[experiments.train]
image = "busybox:latest"
command = ["sh", "-c", "echo \\"{\\\\\\"acc\\\\\\": $(cat acc.txt)}\\" >> $WORKBENCH_METRICS"]
checks = { acc = ">= 0.9" }
"""
IDENTITY = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.org", "GIT_COMMITTER_NAME": "Bench",
            "GIT_COMMITTER_EMAIL": "bench@example.org"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY}).stdout.strip()


def commit(repo: Path, acc: float, message: str) -> str:
    (repo / "acc.txt").write_text(f"{acc}\n")
    git(repo, "commit", "-qam", message)
    return git(repo, "rev-parse", "HEAD")


def end_background(home: Path) -> None:
    """The dispatcher and the runs' followers this benchmark's data dir started, by pid."""
    for pid in background_pids(home):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5, help="single commits timed")
    parser.add_argument("--burst", type=int, default=50, help="commits landing at once")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="wb-bench-ci-"))
    os.environ["WORKBENCH_HOME"] = str(home / "data")
    repo = home / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "workbench.toml").write_text(SPEC)
    (repo / "acc.txt").write_text("0.95\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")

    from workbench.services import Workbench

    wb = Workbench()
    store = wb._services.store
    path = str(repo.resolve())

    def row(sha: str) -> dict | None:
        found = store.ci_commits(path, [sha])
        return found[0] if found else None

    def started(sha: str) -> float | None:
        found = row(sha)
        return found.get("run_started_at") if found else None

    def ended(sha: str) -> bool:
        found = row(sha)
        return bool(found and found.get("run_status") not in (None, "queued", "running"))

    follower = wb.ci_watch(path, lambda line: None)
    latencies: list[float] = []
    try:
        wait_for(lambda: ended(git(repo, "rev-parse", "HEAD")), timeout=120, interval=0.05)  # the head, run at start
        for i in range(args.n):
            before = time.time()
            sha = commit(repo, 0.96 + i / 1000, f"commit {i}")
            latencies.append(wait_for(lambda: started(sha), interval=0.005) - before)
            wait_for(lambda: ended(sha), timeout=120, interval=0.05)

        git(repo, "checkout", "-q", "-b", "work")
        burst = [commit(repo, 0.9 + i / 1000, f"burst {i}") for i in range(args.burst)]
        git(repo, "checkout", "-q", "main")
        moved = time.time()
        git(repo, "merge", "-q", "--ff-only", "work")  # one ref update, as a pull

        def all_recorded() -> bool:
            rows = store.ci_commits(path, burst)
            return (len(rows) == len(burst) and sum(r["state"] == "run" for r in rows) == 1
                    and sum(r["state"] == "skipped" for r in rows) == len(burst) - 1)
        wait_for(all_recorded, interval=0.002)
        burst_recorded = time.time() - moved
        burst_started = wait_for(lambda: started(burst[-1]), interval=0.005) - moved
        wait_for(lambda: ended(burst[-1]), timeout=120, interval=0.05)
        states = sorted(r["state"] for r in store.ci_commits(path, burst))
    finally:
        follower.stop()
        end_background(home / "data")
        wb.close()
    print(json.dumps({
        "commits": args.n,
        "commit_to_run_started_median_s": round(statistics.median(latencies), 3),
        "commit_to_run_started_max_s": round(max(latencies), 3),
        "target_commit": "<= 2 s",
        "burst": args.burst,
        "burst_runs": states.count("run"), "burst_skipped": states.count("skipped"),
        "burst_to_all_recorded_s": round(burst_recorded, 3),
        "burst_to_newest_run_started_s": round(burst_started, 3),
        "target_burst": "<= 3 s",
    }, indent=2))


if __name__ == "__main__":
    main()
