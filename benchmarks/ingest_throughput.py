"""Metric ingest end to end: an experiment writes 1,000,000 points as fast as it can; measured from its
first write until every point is queryable, against plain sqlite3 executemany of the same rows.

    python benchmarks/ingest_throughput.py [--points 1000000] [--executor process|docker]
Target (issue 2): >= 200,000 points/s, within 2x of the executemany baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

KEYS = ("loss", "acc", "lr", "grad_norm", "throughput")
WRITER = """\
import json, os, time
path = os.environ["WORKBENCH_METRICS"]
lines = int(os.environ["WB_PARAM_LINES"])
with open(os.path.join(os.environ["WORKBENCH_OUTPUT"], "first_write"), "w") as fh:
    fh.write(repr(time.time()))
with open(path, "w") as out:
    for step in range(lines):
        out.write('{"step": %d, "loss": %r, "acc": %r, "lr": 0.001, "grad_norm": %r, "throughput": 1234.5}\\n'
                  % (step, 1.0 / (step + 1), step / lines, (step % 97) * 0.01))
with open(os.path.join(os.environ["WORKBENCH_OUTPUT"], "last_write"), "w") as fh:
    fh.write(repr(time.time()))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--executor", default="process", choices=("process", "docker"))
    args = parser.parse_args()
    lines = args.points // len(KEYS)

    home = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    os.environ["WORKBENCH_HOME"] = str(home)
    project = home / "project"
    project.mkdir()
    (project / "write.py").write_text(WRITER)
    (project / "workbench.toml").write_text(
        '[experiments.flood]\nimage = "python:3.11-slim"\ncommand = ["python3", "write.py"]\n'
        f"params = {{ lines = {lines} }}\n")

    from workbench.services import Workbench

    wb = Workbench()
    run = wb.launch(str(project), executor=args.executor)
    wb.wait(run.id)
    done = time.time()
    final = wb._services.store.get_run(run.id)
    first_write = float((home / "runs" / run.id / "out" / "first_write").read_text())
    last_write = float((home / "runs" / run.id / "out" / "last_write").read_text())
    points = wb._services.store.metric_count(final["seq"])
    assert points == lines * len(KEYS), (points, lines * len(KEYS))
    elapsed = done - first_write
    rate = points / elapsed

    # Baseline: the same rows through plain sqlite3 executemany into the same schema, same indexes.
    from workbench.store.schema import MIGRATIONS
    rows = [(1, k + 1, step, first_write, v) for step in range(lines)
            for k, v in enumerate((1.0 / (step + 1), step / lines, 0.001, (step % 97) * 0.01, 1234.5))]
    base_db = home / "baseline.db"
    conn = sqlite3.connect(base_db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for statement in MIGRATIONS[0].split(";"):
        if "metrics" in statement and statement.strip():
            conn.execute(statement)
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO metrics (run_seq, key_id, step, ts, value) VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    base_elapsed = time.perf_counter() - started
    base_rate = len(rows) / base_elapsed

    result = {
        "points": points, "executor": args.executor,
        "experiment_writing_seconds": round(last_write - first_write, 3),
        "end_to_end_seconds": round(elapsed, 3), "end_to_end_points_per_s": round(rate),
        "executemany_seconds": round(base_elapsed, 3), "executemany_points_per_s": round(base_rate),
        "ratio_vs_executemany": round(elapsed / base_elapsed, 2),
        "target": ">= 200000 points/s and ratio <= 2.0",
    }
    print(json.dumps(result, indent=2))
    wb.close()


if __name__ == "__main__":
    sys.exit(main())
