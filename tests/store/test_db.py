"""The database file done right: migrations once, WAL, two processes on one database, a newer schema refused
(store/db.py, store/schema.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

from workbench.store import open_store
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
