"""Metric points: one row per (run, key, step). NaN is stored as NULL (SQLite has no NaN) and read back as NaN."""

from __future__ import annotations

import math
import sqlite3
from typing import Any, Iterable

NAN = math.nan


class MetricQueries:
    conn: sqlite3.Connection
    _key_cache: dict[str, int]

    def key_ids(self, conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, int]:
        """Interned ids for metric names; call inside a write transaction."""
        cache = self.__dict__.setdefault("_key_cache", {})
        missing = [n for n in set(names) if n not in cache]
        if missing:
            conn.executemany("INSERT OR IGNORE INTO metric_keys (name) VALUES (?)", [(n,) for n in missing])
            marks = ",".join("?" * len(missing))
            for key_id, name in conn.execute(f"SELECT id, name FROM metric_keys WHERE name IN ({marks})", missing):
                cache[name] = key_id
        return cache

    def key_id(self, name: str) -> int:
        cache = self.__dict__.setdefault("_key_cache", {})
        if name not in cache:
            with self.tx() as conn:  # type: ignore[attr-defined]
                self.key_ids(conn, [name])
        return cache[name]

    def metric_names(self, run_seq: int) -> list[str]:
        rows = self.query(  # type: ignore[attr-defined]
            "SELECT name FROM metric_keys WHERE id IN (SELECT key_id FROM metric_stats WHERE run_seq = ?) "
            "ORDER BY name",
            (run_seq,),
        )
        return [r[0] for r in rows]

    def metric_history(self, run_seq: int, key: str, *, with_ts: bool = False) -> list[tuple]:
        """(step, value) — or (step, ts, value) — in step order; NaN comes back as NaN."""
        columns = "step, ts, value" if with_ts else "step, value"
        with self.lock:  # type: ignore[attr-defined]
            row = self.conn.execute("SELECT id FROM metric_keys WHERE name = ?", (key,)).fetchone()
            if row is None:
                return []
            cursor = self.conn.execute(
                f"SELECT {columns} FROM metrics WHERE run_seq = ? AND key_id = ? ORDER BY step", (run_seq, row[0])
            )
            cursor.row_factory = None
            rows = cursor.fetchall()
        if any(r[-1] is None for r in rows):
            rows = [(*r[:-1], NAN if r[-1] is None else r[-1]) for r in rows]
        return rows

    def metric_stats(self, run_seq: int, key: str) -> dict[str, Any]:
        """Count, extremes (NaN ignored) and last value of a metric, computed by SQLite."""
        with self.lock:  # type: ignore[attr-defined]
            row = self.conn.execute("SELECT id FROM metric_keys WHERE name = ?", (key,)).fetchone()
            if row is None:
                return {"points": 0, "min": None, "max": None, "last": None}
            kept = self.conn.execute(  # kept by every commit of points (no scan of them)
                "SELECT points, first_step, last_step, vmin, vmax FROM metric_stats WHERE run_seq = ? AND key_id = ?",
                (run_seq, row[0])).fetchone()
            count, s0, s1, vmin, vmax = kept or (0, None, None, None, None)
            last = self.conn.execute(
                "SELECT value FROM metrics WHERE run_seq = ? AND key_id = ? ORDER BY step DESC LIMIT 1",
                (run_seq, row[0])).fetchone()
        return {"points": count, "min": vmin, "max": vmax,
                "last": None if last is None else NAN if last[0] is None else last[0],
                "key_id": row[0], "first_step": s0, "last_step": s1}

    def metric_series(self, run_seq: int, key: str, buckets: int) -> dict[str, Any]:
        """A metric downsampled in SQLite to at most `buckets` (step, min, max) triples by step range, with
        its count, extremes and last value: a 1,000,000-point history draws from a few hundred rows."""
        stats = self.metric_stats(run_seq, key)
        if not stats["points"]:
            return {**stats, "series": []}
        key_id, count, s0, s1 = stats.pop("key_id"), stats["points"], stats["first_step"], stats["last_step"]
        with self.lock:  # type: ignore[attr-defined]
            if count <= buckets:
                series = self.conn.execute(
                    "SELECT step, value, value FROM metrics WHERE run_seq = ? AND key_id = ? AND value IS NOT NULL "
                    "ORDER BY step", (run_seq, key_id)).fetchall()
            else:
                span = (s1 - s0) + 1
                series = self.conn.execute(
                    "SELECT min(step), min(value), max(value) FROM metrics WHERE run_seq = ? AND key_id = ? "
                    "AND value IS NOT NULL GROUP BY (step - ?) * ? / ? ORDER BY 1",
                    (run_seq, key_id, s0, buckets, span)).fetchall()
        return {**stats, "series": [tuple(r) for r in series]}

    def metric_sampled(self, run_seq: int, key: str, samples: int) -> dict[str, Any]:
        """`metric_series` for overlaying many runs: the first point at or after each of `samples` evenly
        spaced steps (one index seek each), as (step, value, value) triples — no scan of the points, so a
        curve of a million points costs a few hundred seeks. Spikes between samples are not shown."""
        stats = self.metric_stats(run_seq, key)
        if stats["points"] <= samples:
            return self.metric_series(run_seq, key, samples)  # every point
        key_id, s0, s1 = stats.pop("key_id"), stats["first_step"], stats["last_step"]
        series, seen = [], set()
        with self.lock:  # type: ignore[attr-defined]
            for i in range(samples):
                target = s0 + (s1 - s0) * i // max(1, samples - 1)
                row = self.conn.execute(
                    "SELECT step, value FROM metrics WHERE run_seq = ? AND key_id = ? AND step >= ? AND value IS NOT NULL "
                    "ORDER BY step LIMIT 1", (run_seq, key_id, target)).fetchone()
                if row and row[0] not in seen:
                    seen.add(row[0])
                    series.append((row[0], row[1], row[1]))
        return {**stats, "series": series}

    def metric_count(self, run_seq: int) -> int:
        return self.query("SELECT count(*) FROM metrics WHERE run_seq = ?", (run_seq,))[0][0]  # type: ignore[attr-defined]
