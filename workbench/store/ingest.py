"""Ingestion state: per-stream offsets committed with the rows they cover, each commit under the run's
lease (store/leases.py)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from workbench.store.leases import Lease, hold


@dataclass
class Offset:
    offset: str = "0"      # the executor's opaque position in the source
    lines: int = 0         # lines consumed so far (the ordinal of the next metric line)
    local_size: int = 0    # bytes of the local copy (logs.txt) that this offset accounts for


@dataclass
class MetricBatch:
    rows: Sequence[tuple[int, int, float, float | None]]  # (key id, step, ts, value)
    bad_lines: int
    bad_values: int
    summary: dict[str, Any]


class IngestQueries:
    conn: sqlite3.Connection

    def get_offset(self, run_seq: int, stream: str) -> Offset:
        rows = self.query(  # type: ignore[attr-defined]
            "SELECT offset, lines, local_size FROM ingest_offsets WHERE run_seq = ? AND stream = ?",
            (run_seq, stream),
        )
        return Offset(rows[0][0], rows[0][1], rows[0][2]) if rows else Offset()

    @staticmethod
    def _put_offset(conn: sqlite3.Connection, run_seq: int, stream: str, offset: Offset) -> None:
        conn.execute(
            "INSERT INTO ingest_offsets (run_seq, stream, offset, lines, local_size) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_seq, stream) DO UPDATE SET offset = excluded.offset, lines = excluded.lines, "
            "local_size = excluded.local_size",
            (run_seq, stream, offset.offset, offset.lines, offset.local_size),
        )

    def commit_log(self, run_seq: int, lease: Lease, write: Callable[[], Offset]) -> Offset:
        """Appends to a run's local log and commits the offset after it, in one transaction and only while
        `lease` is ours: `write` runs after the lease is proven, so a reader that lost its lease (a stream
        that woke after a reconnect, on a thread its new owner no longer waits for) never adds a line."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            hold(conn, lease)
            offset = write()
            self._put_offset(conn, run_seq, "logs", offset)
        return offset

    def commit_metrics(self, run_seq: int, batch: MetricBatch, offset: Offset, lease: Lease | None = None,
                       warning: str | None = None) -> None:
        """The points and the offset after them (and a warning event about them), in one transaction: a crash
        keeps all or none, and only the lease's owner commits (so two processes never ingest the same lines)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            hold(conn, lease)
            if warning:
                conn.execute("INSERT INTO events (ts, run_id, kind, message) SELECT ?, id, 'warning', ? FROM runs "
                             "WHERE seq = ?", (time.time(), warning, run_seq))
            # Rows go in as the parser made them (run_seq is our own integer, inlined).
            before = conn.execute("SELECT coalesce(max(rowid), 0) FROM metrics").fetchone()[0]
            conn.executemany(
                f"INSERT INTO metrics (run_seq, key_id, step, ts, value) VALUES ({int(run_seq)}, ?, ?, ?, ?)",
                batch.rows,
            )
            # the keys' stats grow with the rows just written (read back by rowid: no scan of older points)
            conn.execute(
                "INSERT INTO metric_stats (run_seq, key_id, points, vmin, vmax, first_step, last_step) "
                "SELECT run_seq, key_id, count(*), min(value), max(value), min(step), max(step) FROM metrics "
                "WHERE rowid > ? GROUP BY run_seq, key_id ORDER BY run_seq, key_id "
                "ON CONFLICT (run_seq, key_id) DO UPDATE SET points = points + excluded.points, "
                "vmin = CASE WHEN vmin IS NULL THEN excluded.vmin WHEN excluded.vmin IS NULL THEN vmin "
                "ELSE min(vmin, excluded.vmin) END, "
                "vmax = CASE WHEN vmax IS NULL THEN excluded.vmax WHEN excluded.vmax IS NULL THEN vmax "
                "ELSE max(vmax, excluded.vmax) END, "
                "first_step = min(first_step, excluded.first_step), last_step = max(last_step, excluded.last_step)",
                (before,))
            if batch.summary:
                old = conn.execute("SELECT summary FROM runs WHERE seq = ?", (run_seq,)).fetchone()
                summary = {**json.loads(old[0] if old else "{}"), **batch.summary}
                conn.execute("UPDATE runs SET summary = ? WHERE seq = ?", (json.dumps(summary), run_seq))
            conn.execute(
                "UPDATE runs SET metric_points = metric_points + ?, bad_metric_lines = bad_metric_lines + ?, "
                "bad_metric_values = bad_metric_values + ? WHERE seq = ?",
                (len(batch.rows), batch.bad_lines, batch.bad_values, run_seq),
            )
            self._put_offset(conn, run_seq, "metrics", offset)
