"""The job runner's tables: GPU reservations, and runs waiting in the queue.

A GPU (machine, uuid) is reserved by at most one run: the primary key says so, so two dispatchers, two CLIs
or the app that try to take the same GPU cannot both succeed; the loser's transaction rolls back whole. A
run's end (finish_run, delete_run) releases what it reserved in the same transaction."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from workbench.store.runs import decode_run


WAITING_COLUMNS = ("id, seq, project, experiment, status, status_reason, machine, created_at, priority, waiting, "
                   "sweep_id, trial")


class QueueQueries:
    conn: sqlite3.Connection

    # reservations ------------------------------------------------------------------------------------
    def reserved_gpus(self, machine: str | None = None) -> dict[tuple[str, str], str]:
        """(machine, GPU uuid) -> the run holding it."""
        sql = "SELECT machine, uuid, run_id FROM gpu_reservations"
        rows = self.query(sql + (" WHERE machine = ?" if machine else ""),  # type: ignore[attr-defined]
                          (machine,) if machine else ())
        return {(m, u): r for m, u, r in rows}

    def place_run(self, run_id: str, machine: str, uuids: list[str], fields: dict[str, Any],
                  from_queue: bool = False) -> bool:
        """Reserves `uuids` on `machine` for the run and records its placement (`fields`: machine, executor,
        placement, hourly_cost, gpu_share, gpu_uuids, …) in one transaction. False, with nothing changed,
        when a GPU is reserved by another run already, or the run is no longer waiting (`from_queue`: it
        was cancelled, or another dispatcher placed it)."""
        from workbench.store.runs import _encode

        encoded = _encode({**fields, "machine": machine, "gpu_uuids": uuids, "waiting": None})
        assignments = ", ".join(f"{k} = ?" for k in encoded)
        condition = " AND status = 'queued' AND waiting IS NOT NULL" if from_queue else ""
        try:
            with self.tx() as conn:  # type: ignore[attr-defined]
                if not conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?{condition}",
                                    (*encoded.values(), run_id)).rowcount:
                    raise _Conflict
                conn.executemany("INSERT INTO gpu_reservations (machine, uuid, run_id, reserved_at) VALUES (?, ?, ?, ?)",
                                 [(machine, uuid, run_id, time.time()) for uuid in uuids])
        except (_Conflict, sqlite3.IntegrityError):
            return False
        return True

    def release_gpus(self, run_id: str) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("DELETE FROM gpu_reservations WHERE run_id = ?", (run_id,))

    def release_dead_reservations(self) -> int:
        """Reservations of runs that ended or are gone (a safety net: finish_run releases its own)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            return conn.execute(
                "DELETE FROM gpu_reservations WHERE run_id NOT IN "
                "(SELECT id FROM runs WHERE status IN ('queued', 'running')) "
                "AND run_id NOT IN (SELECT 'deployment:' || container FROM deployment_targets "
                "WHERE state NOT IN ('removed', 'failed'))").rowcount

    def reservations_version(self) -> tuple[int, int]:
        """Changes whenever a GPU is reserved or released, or a run ends: what a dispatcher polls for."""
        row = self.query(  # type: ignore[attr-defined]
            "SELECT (SELECT count(*) FROM gpu_reservations), "
            "(SELECT coalesce(max(seq), 0) + count(*) FROM runs WHERE status IN ('queued', 'running'))")[0]
        return int(row[0]), int(row[1])

    def dispatch_look(self) -> tuple[bool, tuple[int, int]]:
        """What a dispatcher polls, in one query: whether anything waits (a queued run, a running sweep),
        and the reservations version (see reservations_version)."""
        row = self.query(  # type: ignore[attr-defined]
            "SELECT EXISTS (SELECT 1 FROM runs WHERE waiting IS NOT NULL AND status = 'queued') "
            "OR EXISTS (SELECT 1 FROM sweeps WHERE status = 'running'), "
            "(SELECT count(*) FROM gpu_reservations), "
            "(SELECT coalesce(max(seq), 0) + count(*) FROM runs WHERE status IN ('queued', 'running'))")[0]
        return bool(row[0]), (int(row[1]), int(row[2]))

    # the queue ------------------------------------------------------------------------------------
    def waiting_runs(self, light: bool = False) -> list[dict[str, Any]]:
        """Runs waiting for a machine, highest priority first, then first come first served. `light`: only
        what placing them needs (a dispatcher's pass over thousands of them; get_run has the rest)."""
        columns = WAITING_COLUMNS if light else "*"
        rows = self.query(  # type: ignore[attr-defined]
            f"SELECT {columns} FROM runs WHERE waiting IS NOT NULL AND status = 'queued' ORDER BY priority DESC, seq")
        return [decode_run(r) for r in rows]

    def cancel_waiting(self, run_id: str, reason: str) -> bool:
        """Cancels a run only while it is in the queue (one a dispatcher just placed is its launcher's)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            changed = conn.execute(
                "UPDATE runs SET status = 'cancelled', status_reason = ?, finished_at = ?, waiting = NULL "
                "WHERE id = ? AND status = 'queued' AND waiting IS NOT NULL", (reason, time.time(), run_id)).rowcount
            if changed:
                conn.execute("INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, 'cancelled', ?)",
                             (time.time(), run_id, reason))
                conn.execute("DELETE FROM gpu_reservations WHERE run_id = ?", (run_id,))
        return bool(changed)

    def costs_by_project(self, now: float) -> dict[str, float]:
        """What each project's runs cost so far: each run's rate × hours run × its share of the machine."""
        rows = self.query(  # type: ignore[attr-defined]
            "SELECT project, sum(hourly_cost * max(0, coalesce(finished_at, ?) - started_at) / 3600.0 "
            "* coalesce(gpu_share, 1.0)) FROM runs WHERE hourly_cost IS NOT NULL AND started_at IS NOT NULL "
            "GROUP BY project", (now,))
        return {project: cost for project, cost in rows}

    def has_waiting(self) -> bool:
        return bool(self.query("SELECT EXISTS (SELECT 1 FROM runs WHERE waiting IS NOT NULL AND status = 'queued')")[0][0])  # type: ignore[attr-defined]

    def requeue(self, run_id: str, request: dict[str, Any], reason: str) -> bool:
        """A placed run whose launcher died before it started goes back to the queue (its GPUs released):
        only while it is placed, unstarted and no one holds its lease (a launcher that took it meanwhile)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            changed = conn.execute(
                "UPDATE runs SET waiting = ?, status_reason = ? WHERE id = ? AND status = 'queued' "
                "AND handle IS NULL AND waiting IS NULL AND NOT EXISTS (SELECT 1 FROM leases "
                "WHERE name = 'ingest:' || runs.id AND expires_at > ?)",
                (json.dumps(request), reason, run_id, time.time())).rowcount
            if changed:
                conn.execute("DELETE FROM gpu_reservations WHERE run_id = ?", (run_id,))
                conn.execute("INSERT INTO events (ts, run_id, kind, message) VALUES (?, ?, 'queued', ?)",
                             (time.time(), run_id, reason))
        return bool(changed)

    def set_waiting_reasons(self, reasons: dict[str, str]) -> None:
        """What each waiting run waits for, in one transaction (a pass's changes together)."""
        if not reasons:
            return
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.executemany("UPDATE runs SET status_reason = ? WHERE id = ? AND waiting IS NOT NULL",
                             [(reason, run_id) for run_id, reason in reasons.items()])


class _Conflict(Exception):
    pass
