"""Sweeps: one record per `workbench sweep`, its trials the runs that carry its id and their trial number
(unique per sweep: a trial is never recorded twice)."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from workbench.store.runs import decode_run

SWEEP_JSON = ("space", "options", "base_params", "request")
TRIAL_COLUMNS = ("seq, id, project, experiment, status, status_reason, machine, executor, created_at, started_at, "
                 "finished_at, params, summary, waiting, handle, hourly_cost, gpu_share, sweep_id, trial, verdict")


def decode_sweep(row: sqlite3.Row) -> dict[str, Any]:
    sweep = dict(row)
    for column in SWEEP_JSON:
        if isinstance(sweep.get(column), str):
            sweep[column] = json.loads(sweep[column])
    return sweep


class SweepQueries:
    conn: sqlite3.Connection

    def insert_sweep(self, sweep: dict[str, Any]) -> None:
        encoded = {k: json.dumps(v) if k in SWEEP_JSON else v for k, v in sweep.items()}
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(f"INSERT INTO sweeps ({', '.join(encoded)}) VALUES ({', '.join('?' for _ in encoded)})",
                         tuple(encoded.values()))

    def get_sweep(self, ref: str) -> dict[str, Any]:
        from workbench.errors import NotFound

        ref = ref.strip()
        rows = self.query("SELECT * FROM sweeps WHERE id = ?", (ref,)) if ref else []  # type: ignore[attr-defined]
        if not rows and ref:
            rows = self.query("SELECT * FROM sweeps WHERE id >= ? AND id < ? LIMIT 2",  # type: ignore[attr-defined]
                              (ref, ref + "\uffff"))
        if len(rows) != 1:
            raise NotFound(f"no sweep {ref!r}" if not rows else f"sweep id {ref!r} is ambiguous",
                           hint="see `workbench sweeps list`")
        return decode_sweep(rows[0])

    def sweeps(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM sweeps" + (" WHERE status = ?" if status else "") + " ORDER BY created_at DESC"
        return [decode_sweep(r) for r in self.query(sql, (status,) if status else ())]  # type: ignore[attr-defined]

    def has_running_sweeps(self) -> bool:
        return bool(self.query("SELECT EXISTS (SELECT 1 FROM sweeps WHERE status = 'running')")[0][0])  # type: ignore[attr-defined]

    def trials(self, sweep_id: str) -> list[dict[str, Any]]:
        """A sweep's trials with what sweeps read of them (not their specs, environments or git records:
        a dispatcher reads every trial of a running sweep on each pass)."""
        rows = self.query(f"SELECT {TRIAL_COLUMNS} FROM runs WHERE sweep_id = ? ORDER BY trial",  # type: ignore[attr-defined]
                          (sweep_id,))
        return [decode_run(r) for r in rows]

    def finish_sweep(self, sweep_id: str, status: str, reason: str | None) -> bool:
        with self.tx() as conn:  # type: ignore[attr-defined]
            return bool(conn.execute(
                "UPDATE sweeps SET status = ?, status_reason = ?, finished_at = ? WHERE id = ? AND status = 'running'",
                (status, reason, time.time(), sweep_id)).rowcount)
