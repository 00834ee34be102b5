"""Issue 8/9/14 figures: how fast a killed launcher's run is adopted and fully ingested, how fast a frozen
Docker engine is reported, how fast a progress bar shows, and the Runs key=value filter and value sort on
100,000 runs. Needs a Docker engine with busybox:latest (as the tests do).

    python benchmarks/fault_recovery.py [--runs 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from tui_perf import seed  # noqa: E402  (the same 100k-run history as the TUI benchmark)

SPEC = """[project]
name = "bench"
[experiments.count]
image = "busybox:latest"
command = ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 0.2; done"]
[experiments.bar]
image = "busybox:latest"
command = ["sh", "-c", "i=0; while [ $i -le 20 ]; do printf '\\\\rtraining: %d/20' $i >&2; sleep 0.3; i=$((i+1)); done"]
"""
KILLED_LAUNCHER = """
import os, sys
from workbench.services import Workbench
wb = Workbench()
wb._services.store.mark_running = lambda *a, **k: os.kill(os.getpid(), 9)
wb.launch(sys.argv[1], "count")
"""


def wb(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], env=env, capture_output=True, text=True)


def first_run(env: dict[str, str]) -> dict:
    return json.loads(wb("runs", "list", "--json", env=env).stdout)[0]


def until(predicate, timeout: float = 60) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise SystemExit("timed out")
        time.sleep(0.05)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        (project / "workbench.toml").write_text(SPEC)
        env = {**os.environ, "WORKBENCH_HOME": str(Path(tmp) / "home")}

        subprocess.run([sys.executable, "-c", KILLED_LAUNCHER, str(project)], env=env)
        adopted = until(lambda: first_run(env)["status"] != "queued")
        done = adopted + until(lambda: first_run(env)["status"] == "succeeded")
        print(f"launcher killed -9 after starting its container: adopted in {adopted:.2f} s, "
              f"fully ingested (2 s run) in {done:.2f} s")

        run_id = wb("run", str(project), "-e", "bar", env=env).stdout.strip()
        from workbench.dirs import resolve_dirs
        progress = resolve_dirs(env["WORKBENCH_HOME"]).run_dir(run_id) / "progress.txt"
        print(f"progress bar (no newline) visible {until(progress.exists, 20):.2f} s after launch returned")

        sock = Path(tmp) / "frozen.sock"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(sock))
        server.listen(8)
        start = time.monotonic()
        frozen = wb("run", str(project), "-e", "count", "--executor", "docker", env={**env, "DOCKER_HOST": f"unix://{sock}"})
        print(f"frozen engine reported in {time.monotonic() - start:.2f} s: {frozen.stderr.strip().splitlines()[-1][:90]}")
        server.close()

        home = Path(tmp) / "big"
        home.mkdir()
        seed(home, args.runs)
        os.environ["WORKBENCH_HOME"] = str(home)
        from workbench.store import open_store
        store = open_store(home / "workbench.db")
        for label, call in (("key=value filter, count", lambda: store.count_matching(text="epochs=15")),
                            ("key=value filter, first page", lambda: store.list_runs(text="epochs=15")),
                            ("sort by metric, first page", lambda: store.list_runs(sort="metric:acc")),
                            ("sort by metric, last page", lambda: store.list_runs(sort="metric:acc",
                                                                                 offset=args.runs - 100))):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            print(f"{label} over {args.runs:,} runs: {min(times) * 1000:.0f} ms (best of 3)")
        store.close()


if __name__ == "__main__":
    main()
