"""The connection: WAL, busy timeout, migrations run once under BEGIN IMMEDIATE."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import sqlite_utils

from workbench.errors import WorkbenchError
from workbench.store.ci import CiQueries
from workbench.store.deployments import DeploymentQueries
from workbench.store.images import ImageQueries
from workbench.store.ingest import IngestQueries
from workbench.store.leases import LeaseQueries
from workbench.store.machines import MachineQueries
from workbench.store.metrics import MetricQueries
from workbench.store.models import ModelQueries
from workbench.store.projects import ProjectQueries
from workbench.store.queue import QueueQueries
from workbench.store.sweeps import SweepQueries
from workbench.store.runs import RunQueries
from workbench.store.telemetry import TelemetryQueries
from workbench.store.schema import MIGRATIONS

BUSY_TIMEOUT_MS = 10_000


class Store(RunQueries, CiQueries, QueueQueries, SweepQueries, ModelQueries, DeploymentQueries, MetricQueries, IngestQueries, LeaseQueries, ImageQueries, ProjectQueries,
            MachineQueries, TelemetryQueries):
    """One SQLite connection shared by the threads of one process; writes are serialised by a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise WorkbenchError(f"cannot open the database {self.path}: {exc}") from None
        self.conn.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self._depth = 0
        self._db: Any = None
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            # Checkpoint less often than every 4 MB (each one fsyncs) during heavy ingestion; cap the file.
            self.conn.execute("PRAGMA wal_autocheckpoint = 8000")
            self.conn.execute("PRAGMA journal_size_limit = 67108864")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            from workbench.failures import explain

            raise WorkbenchError(explain(exc, self.path.parent)
                                 or f"{self.path} is not a usable Workbench database: {exc}") from None
        self.instance = self._instance_id()

    @property
    def db(self) -> "sqlite_utils.Database":
        """sqlite-utils over the same connection, for ordinary table work. Imported lazily: it pulls in
        numpy when installed (~0.2 s), which the CLI's hot paths (runs list, run) must not pay."""
        if self._db is None:
            import sys

            # sqlite-utils imports numpy when it is installed, only to convert numpy values on insert,
            # which we never pass; keeping numpy out saves ~0.2 s. Lifted right after.
            blocked = "numpy" not in sys.modules
            if blocked:
                sys.modules["numpy"] = None  # type: ignore[assignment]
            try:
                import sqlite_utils
            finally:
                if blocked:
                    del sys.modules["numpy"]
            self._db = sqlite_utils.Database(self.conn)
        return self._db

    # transactions -------------------------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: takes the write lock up front, so no upgrade deadlocks)."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
            finally:
                self._depth = 0
        self._db: Any = None

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # schema ---------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version == len(MIGRATIONS):
            return
        if version > len(MIGRATIONS):
            raise WorkbenchError(
                f"{self.path} was written by a newer Workbench (schema {version}); upgrade Workbench to open it"
            )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                if callable(script):
                    script(self.conn)
                else:
                    for statement in _statements(script):
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number}")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _instance_id(self) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
        if row:
            return row[0]
        with self.tx() as conn:
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?)", (uuid.uuid4().hex[:16],))
        return self.conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0]


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit our transaction)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def open_store(path: Path) -> Store:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Store(path)
