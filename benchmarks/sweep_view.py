"""The sweep view's draw time (issue 11: ≤ 0.5 s for a 200-trial sweep): a sweep of N finished trials, each
with its objective and a few hundred points of history, recorded in a fresh data dir, then
  1. the service: `sweep_summary` (trials sorted by the objective, progress, best, cost);
  2. `workbench sweeps show ID` end to end (a new process: table and a scatter per param);
  3. the app: from `w` on a trial on the Runs screen to the sweep view painted with its table and scatters.

    python benchmarks/sweep_view.py [--trials 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]


def seed(trials: int, points: int) -> str:
    from workbench.services import Workbench
    from workbench.store.ingest import MetricBatch, Offset

    wb = Workbench()
    now = time.time()
    space = {"lr": {"low": 1e-4, "high": 1e-1, "log": True}, "hidden": [32, 64, 128, 256]}
    wb._services.store.insert_sweep({"id": "bench001", "project": "bench", "project_path": "/p", "experiment": "train",
                           "method": "tpe", "space": space, "base_params": {},
                           "options": {"trials": trials, "max_parallel": 4, "objective": "acc",
                                       "direction": "maximize", "budget": None},
                           "request": {}, "experiment_spec": "{}", "snapshot": "s", "status": "done",
                           "created_at": now - 10_000, "finished_at": now})
    acc_key = wb._services.store.key_id("acc")
    for trial in range(trials):
        lr = 10 ** (-4 + 3 * ((trial * 37) % trials) / trials)
        hidden = [32, 64, 128, 256][trial % 4]
        final = 0.97 - 0.1 * abs(math.log10(lr) + 2) - 0.01 * (hidden == 32)
        seq = wb._services.store.insert_run({
            "id": f"trial{trial:04d}", "project": "bench", "project_path": "/p", "experiment": "train",
            "status": "succeeded", "machine": "local", "executor": "docker", "created_at": now - 9000 + trial,
            "started_at": now - 9000 + trial, "finished_at": now - 8000 + trial, "params": {"lr": lr, "hidden": hidden},
            "sweep_id": "bench001", "trial": trial, "hourly_cost": 2.0, "gpu_share": 0.25})
        rows = [(acc_key, s, now, final * (s + 1) / points) for s in range(points)]
        wb._services.store.commit_metrics(seq, MetricBatch(rows, len(rows), 0, {"acc": final}), Offset("1", len(rows), 0))
    wb.close()
    return "trial0000"


async def app_figure(trial: str) -> float:
    from workbench.services import Workbench
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.screens.sweep import SweepScreen

    wb = Workbench()
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        for _ in range(100):
            await pilot.pause(0.05)
            if getattr(app.screen, "table", None) is not None and app.screen.table.row_count:
                break
        app.screen.select(trial)
        await pilot.pause(0.1)
        started = time.perf_counter()
        await pilot.press("w")
        while not (isinstance(app.screen, SweepScreen) and app.screen.loads):
            await pilot.pause(0.005)
        await pilot.pause()  # one more frame: painted
        elapsed = time.perf_counter() - started
    wb.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--points", type=int, default=300)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="wb-bench-sweep-view-"))
    os.environ["WORKBENCH_HOME"] = str(home)
    trial = seed(args.trials, args.points)
    from workbench.services import Workbench

    wb = Workbench()
    started = time.perf_counter()
    summary = wb.sweep_summary("bench001")
    service = time.perf_counter() - started
    assert len(summary.trials) == args.trials and summary.best
    wb.close()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "workbench", "sweeps", "show", "bench001"], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "80"})
    cli = time.perf_counter() - started
    assert done.returncode == 0 and "acc by lr" in done.stdout, done.stderr
    app = asyncio.run(app_figure(trial))
    print(json.dumps({"trials": args.trials, "points_per_trial": args.points, "1_service_s": round(service, 3),
                      "2_cli_sweeps_show_s": round(cli, 3), "3_app_w_to_painted_s": round(app, 3),
                      "target": "each <= 0.5 s"}, indent=2))


if __name__ == "__main__":
    main()
