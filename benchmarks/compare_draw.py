"""Comparing 10 runs of 100,000 points each (two metrics: 2,000,000 points in all), in a temporary data dir.

    python benchmarks/compare_draw.py [--runs 10] [--points 100000]

Prints:
  1. the service (`Workbench.compare`: params, last/best per metric, each curve downsampled in SQLite);
  2. `workbench runs compare ...` end to end (a new process: import, open, query, print the table and the
     overlaid charts);
  3. the app: from pressing C on the Runs screen (10 runs marked) to the Compare screen's table and charts
     painted, at 80×24, under Textual's Pilot.
                                                        Target: each <= 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]


def seed(home: Path, runs: int, points: int) -> list[str]:
    from workbench.services import Workbench
    from workbench.store.ingest import MetricBatch, Offset

    wb = Workbench()
    ids = []
    now = time.time()
    for i in range(runs):
        run_id = f"cmp{i:05d}"
        seq = wb._services.store.insert_run({"id": run_id, "project": "bench", "project_path": "/p", "experiment": "train",
                                   "status": "succeeded", "machine": "local", "executor": "process",
                                   "created_at": now - 1000 + i, "started_at": now - 1000 + i, "finished_at": now,
                                   "params": {"lr": 0.01 * (i + 1), "epochs": 10}})
        loss, acc = wb._services.store.key_id("loss"), wb._services.store.key_id("acc")
        rows = [(loss, s, now, 1.0 / (1 + s * (i + 1) / points)) for s in range(points)]
        rows += [(acc, s, now, (s / points) * (0.5 + i / (2 * runs))) for s in range(points)]
        wb._services.store.commit_metrics(seq, MetricBatch(rows, len(rows), 0, {}), Offset("1", len(rows), 0))
        ids.append(run_id)
    wb.close()
    return ids


async def app_figure(ids: list[str]) -> float:
    from workbench.services import Workbench
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.screens.compare import CompareScreen
    from workbench.tui.widgets.compare_chart import CompareChart

    wb = Workbench()
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        for _ in range(40):
            await pilot.pause(0.05)
            if getattr(app.screen, "table", None) is not None and app.screen.table.row_count:
                break
        app.screen.marked = list(ids)
        started = time.perf_counter()
        await pilot.press("C")
        while not (isinstance(app.screen, CompareScreen) and app.screen.data is not None
                   and len(app.screen.query(CompareChart)) == 2):
            await pilot.pause(0.005)
        await pilot.pause()  # one more frame: painted
        elapsed = time.perf_counter() - started
    wb.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="wb-bench-compare-"))
    os.environ["WORKBENCH_HOME"] = str(home)
    ids = seed(home, args.runs, args.points)
    from workbench.services import Workbench

    wb = Workbench()
    started = time.perf_counter()
    wb.compare(ids)
    service = time.perf_counter() - started
    wb.close()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "workbench", "runs", "compare", *ids], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "80"})
    cli = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    app = asyncio.run(app_figure(ids))
    print(json.dumps({"runs": args.runs, "points_per_run_per_metric": args.points,
                      "1_service_s": round(service, 3), "2_cli_s": round(cli, 3), "3_app_c_to_painted_s": round(app, 3),
                      "target": "each <= 0.5 s"}, indent=2))


if __name__ == "__main__":
    main()
