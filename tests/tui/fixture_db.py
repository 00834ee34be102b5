"""A fixture database with a known history and a frozen clock, for deterministic screens."""

from __future__ import annotations

from workbench.services import Workbench
from workbench.store.ingest import MetricBatch, Offset

NOW = 1_795_000_000.0  # the injected clock


def seed(wb: Workbench, count: int = 6) -> list[str]:
    ids = []
    statuses = ["succeeded", "failed", "succeeded", "cancelled", "lost", "succeeded"]
    for i in range(count):
        run_id = f"r{i:07d}"
        created = NOW - 3600 + i * 60
        status = statuses[i % len(statuses)]
        seq = wb._services.store.insert_run({
            "id": run_id, "project": "mnist-numpy" if i % 2 == 0 else "hello-shell",
            "project_path": "/projects/demo", "experiment": "train" if i % 2 == 0 else "hello",
            "status": status, "status_reason": "exit code 1" if status == "failed" else None,
            "machine": "local", "executor": "docker", "created_at": created, "started_at": created + 1,
            "finished_at": created + 31, "exit_code": 0 if status == "succeeded" else 1,
            "params": {"lr": round(0.1 / (i + 1), 4), "epochs": 15}, "argv": ["python", "train.py"],
            "env": {"WORKBENCH_RUN_ID": run_id, "API_TOKEN": "***"}, "image": "python:3.11-slim",
            "image_id": "sha256:" + "ab" * 32, "snapshot": "cd" * 16,
        })
        loss, acc = wb._services.store.key_id("loss"), wb._services.store.key_id("acc")
        rows = [(loss, s, created + s, 2.0 / (s + 1) + 0.01 * i) for s in range(40)] + \
               [(acc, s, created + s, min(0.99, 0.5 + s * 0.012)) for s in range(40)]
        wb._services.store.commit_metrics(seq, MetricBatch(rows, 0, 0, {"loss": rows[39][3], "acc": rows[-1][3]}),
                                Offset("0", 40, 0))
        ids.append(run_id)
    return ids


