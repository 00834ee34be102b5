"""SQLite done right: migrations once, WAL, two processes on one database, leases."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

from workbench.store import open_store
from workbench.store.ingest import MetricBatch, Offset
from workbench.store.schema import MIGRATIONS


def test_new_database_is_wal_and_migrated(tmp_path):
    store = open_store(tmp_path / "wb.db")
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert store.query("PRAGMA user_version")[0][0] == len(MIGRATIONS)
    instance = store.instance
    store.close()
    again = open_store(tmp_path / "wb.db")
    assert again.instance == instance  # created once, with the database


def test_concurrent_first_opens_migrate_once(tmp_path):
    path = tmp_path / "wb.db"
    code = ("import sys; from pathlib import Path; from workbench.store import open_store; "
            "s = open_store(Path(sys.argv[1])); print(s.instance)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    outputs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outputs) == 1  # one instance id: every process saw the same migrated database


def test_two_processes_write_at_once_without_errors(tmp_path):
    path = tmp_path / "wb.db"
    open_store(path).close()
    code = """
import sys, time
from pathlib import Path
from workbench.store import open_store
s = open_store(Path(sys.argv[1]))
for i in range(150):
    s.insert_run({"id": f"{sys.argv[2]}{i:04d}", "project": "p", "project_path": "/p", "experiment": "e",
                  "status": "succeeded", "machine": "local", "executor": "process", "created_at": time.time()})
"""
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), tag], stderr=subprocess.PIPE, text=True)
             for tag in ("a", "b")]
    reader = open_store(path)
    seen = []
    while any(p.poll() is None for p in procs):
        seen.append(reader.count_runs())  # readers are never blocked by the writers (WAL)
        time.sleep(0.01)
    errors = [p.stderr.read() for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert reader.count_runs() == 300
    assert seen == sorted(seen)


def test_metrics_and_offset_commit_together(tmp_path):
    store = open_store(tmp_path / "wb.db")
    seq = store.insert_run({"id": "r1", "project": "p", "project_path": "/p", "experiment": "e",
                            "status": "running", "machine": "local", "executor": "process",
                            "created_at": time.time()})
    loss = store.key_id("loss")
    batch = MetricBatch([(loss, 0, 1.0, 0.5), (loss, 1, 1.0, None)], 1, 0, {"loss": "NaN"})
    store.commit_metrics(seq, batch, Offset("120", 3, 0))
    assert store.get_offset(seq, "metrics") == Offset("120", 3, 0)
    history = store.metric_history(seq, "loss", with_ts=True)
    assert history[0] == (0, 1.0, 0.5) and history[1][2] != history[1][2]  # NaN comes back as NaN
    assert store.metric_history(seq, "loss")[0] == (0, 0.5)
    try:  # a failing transaction leaves both untouched
        with store.tx() as conn:
            store.commit_metrics(seq, MetricBatch([(loss, 2, 1.0, 0.1)], 0, 0, {}), Offset("200", 4, 0))
            raise RuntimeError("crash")
    except RuntimeError:
        pass
    assert store.get_offset(seq, "metrics").offset == "120"
    assert len(store.metric_history(seq, "loss")) == 2


def test_leases_exclude_and_expire(tmp_path):
    store = open_store(tmp_path / "wb.db")
    assert store.acquire_lease("ingest:r", "a", ttl=0.3)
    assert not store.acquire_lease("ingest:r", "b", ttl=0.3)
    assert store.acquire_lease("ingest:r", "a", ttl=0.3)  # renewal
    time.sleep(0.4)
    assert store.acquire_lease("ingest:r", "b", ttl=5)  # stale: taken over
    store.release_lease("ingest:r", "a")  # a no longer owns it: no effect
    assert store.lease_holder("ingest:r") == "b"


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "wb.db"
    open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    import pytest
    from workbench.errors import WorkbenchError
    with pytest.raises(WorkbenchError, match="newer Workbench"):
        open_store(path)


def test_telemetry_is_downsampled_to_minutes_after_an_hour(tmp_path):
    store = open_store(tmp_path / "wb.db")
    now = 1_800_000_000.0
    old = [("gpu-a", 0, now - 7200 + s, 50.0 + (s % 2) * 10, 1e9, 40.0, 300.0) for s in range(120)]
    recent = [("gpu-a", 0, now - 10 + s, 90.0, 2e9, 60.0, 600.0) for s in range(10)]
    store.add_telemetry(old + recent)
    folded = store.downsample_telemetry(now=now)
    assert folded == 120
    history = store.telemetry_since("gpu-a", now - 8000)[0]
    minutes = [p for p in history if p[0] < now - 3600]
    assert len(minutes) == 2 and all(p[1] == 55.0 for p in minutes)  # two 1-minute averages
    assert len([p for p in history if p[0] >= now - 3600]) == 10  # the last hour stays at 1 s
    store.downsample_telemetry(now=now + 31 * 86400)
    assert store.telemetry_since("gpu-a", 0) == {}  # past a month: gone
