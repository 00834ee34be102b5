"""`workbench runs list --json` with 100,000 runs in the database, and a 100,000-point metric history read
back through the store, and the sort keys (param and metric names) of a filtered 100,000-run history.

    python benchmarks/history_queries.py
Targets (issue 2): runs list <= 0.5 s; metric history <= 150 ms.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    os.environ["WORKBENCH_HOME"] = str(home)
    from workbench.store import open_store

    store = open_store(home / "workbench.db")
    now = time.time()
    statuses = ["succeeded"] * 8 + ["failed", "cancelled"]
    rows = []
    for i in range(100_000):
        created = now - (100_000 - i) * 60
        rows.append((f"{i:08x}", "mnist-numpy", "train", random.choice(statuses), "local", "docker", "/p",
                     created, created + 1, created + 300, 0,
                     json.dumps({"lr": 0.1, "epochs": 15, "hidden": 64}),
                     json.dumps({"loss": random.random(), "acc": random.random()}), 75))
    with store.tx() as conn:
        conn.executemany(
            "INSERT INTO runs (id, project, experiment, status, machine, executor, project_path, created_at, "
            "started_at, finished_at, exit_code, params, summary, metric_points) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        seq = conn.execute("SELECT seq FROM runs ORDER BY seq DESC LIMIT 1").fetchone()[0]
        key = store.key_ids(conn, ["loss"])["loss"]
        conn.executemany("INSERT INTO metrics (run_seq, key_id, step, ts, value) VALUES (?, ?, ?, ?, ?)",
                         [(seq, key, step, now, 1.0 / (step + 1)) for step in range(100_000)])
    store.close()

    def cli(*args: str) -> float:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True)
        elapsed = time.perf_counter() - started
        assert done.returncode == 0, done.stderr
        return elapsed, done.stdout

    default = [cli("runs", "list", "--json")[0] for _ in range(5)]
    everything = []
    for _ in range(5):
        elapsed, out = cli("runs", "list", "--json", "--limit", "0")
        everything.append(elapsed)
    assert len(json.loads(out)) == 100_000

    store = open_store(home / "workbench.db")
    reads = []
    for _ in range(5):
        started = time.perf_counter()
        history = store.metric_history(seq, "loss")
        reads.append(time.perf_counter() - started)
    assert len(history) == 100_000
    names = []
    for _ in range(5):  # the Runs screen's `o`: every param and metric name of the filtered history
        started = time.perf_counter()
        keys = store.value_names(text="lr=0.1")
        names.append(time.perf_counter() - started)
    assert keys == (["epochs", "hidden", "lr"], ["acc", "loss"]), keys
    print(json.dumps({
        "runs_in_db": 100_000,
        "runs_list_json_default_limit_median_s": round(statistics.median(default), 3),
        "runs_list_json_all_100k_median_s": round(statistics.median(everything), 3),
        "metric_history_100k_points_median_ms": round(statistics.median(reads) * 1000, 1),
        "sort_keys_of_100k_filtered_runs_median_ms": round(statistics.median(names) * 1000, 1),
        "targets": "runs list <= 0.5 s; history <= 150 ms",
    }, indent=2))


if __name__ == "__main__":
    main()
