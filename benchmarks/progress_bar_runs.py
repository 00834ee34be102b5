"""A tqdm-style bar redrawn N times as fast as Python writes (tests/fixtures/progress_bars.py: `█▉` bar
characters, a changing description, a 60 kB line and lines around it), run through `workbench run --wait` on
the Docker and process executors in a fresh data dir. Prints each run's time, how many lines the stored log
has, whether it is valid UTF-8 and the bar's stored final state.

    python benchmarks/progress_bar_runs.py [--redraws 100000]
Target (issue 22 item 1): each bar stored once, in its last state; no fragment, no broken character
(5 stored lines: 3 printed lines and the 2 bars' final states).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "progress_bars.py"
SPEC = """[project]
name = "fast-bar"
[experiments.bar]
image = "python:3.11-slim"
command = ["python3", "progress_bars.py", "{n}"]
params = { n = 100000 }
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redraws", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wb-bars-"))
    project = work / "fast-bar"
    project.mkdir()
    (project / "workbench.toml").write_text(SPEC)
    shutil.copy(BARS, project / "progress_bars.py")
    env = {**os.environ, "WORKBENCH_HOME": str(work / "home")}

    def workbench(*argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "workbench", *argv], env=env, capture_output=True)

    figures = {}
    for executor in ("docker", "process"):
        started = time.perf_counter()
        done = workbench("run", str(project), "--executor", executor, "-p", f"n={args.redraws}", "--wait")
        took = time.perf_counter() - started
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        run_id = json.loads(workbench("runs", "list", "--json").stdout)[0]["id"]
        stored = workbench("runs", "logs", run_id, "--raw").stdout
        try:
            text, valid = stored.decode("utf-8"), True
        except UnicodeDecodeError:
            text, valid = stored.decode("utf-8", errors="replace"), False
        bars = [line for line in text.splitlines() if "|" in line and "/" in line]
        figures[executor] = {"run_s": round(took, 1), "stored_lines": text.count("\n"), "valid_utf8": valid,
                             "bars_stored": [bar[:70] for bar in bars]}
    print(json.dumps({"redraws": args.redraws, **figures}, indent=2, ensure_ascii=False))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
