"""Machines: the local one and SSH hosts, their connection settings as JSON."""

from __future__ import annotations

import json
import time
from typing import Any


class MachineQueries:
    def ensure_machine(self, name: str, kind: str, address: str | None = None,
                       config: dict[str, Any] | None = None) -> None:
        if self.query("SELECT 1 FROM machines WHERE name = ?", (name,)):  # type: ignore[attr-defined]
            return  # the common case: no write transaction on every start
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT OR IGNORE INTO machines (name, kind, address, config, added_at) VALUES (?, ?, ?, ?, ?)",
                (name, kind, address, json.dumps(config or {}), time.time()),
            )

    def machines(self) -> list[dict[str, Any]]:
        with self.lock:  # type: ignore[attr-defined]
            return list(self.db["machines"].rows_where(order_by="name"))  # type: ignore[attr-defined]

    def add_machine(self, name: str, kind: str, address: str, config: dict[str, Any]) -> None:
        with self.tx():  # type: ignore[attr-defined]
            self.db["machines"].upsert(  # type: ignore[attr-defined]
                {"name": name, "kind": kind, "address": address, "config": json.dumps(config),
                 "added_at": time.time()}, pk="name")

    def get_machine(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT name, kind, address, config FROM machines WHERE name = ?", (name,))  # type: ignore[attr-defined]
        if not rows:
            return None
        machine = dict(rows[0])
        machine["config"] = json.loads(machine["config"])
        return machine

    def update_machine_config(self, name: str, **changes: Any) -> None:
        """Merges `changes` into a machine's config (read and written in one transaction)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            row = conn.execute("SELECT config FROM machines WHERE name = ?", (name,)).fetchone()
            if row is not None:
                config = {**json.loads(row[0]), **changes}
                conn.execute("UPDATE machines SET config = ? WHERE name = ?", (json.dumps(config), name))

    def remove_machine(self, name: str) -> bool:
        with self.tx() as conn:  # type: ignore[attr-defined]
            return conn.execute("DELETE FROM machines WHERE name = ?", (name,)).rowcount > 0

    # Slurm: the shared result of the last squeue per cluster ----------------------------------------
    def slurm_poll(self, machine: str) -> tuple[float, dict[str, Any], int] | None:
        """(when, {job id: {"state", "reason", "name"}}, calls so far) of the last squeue of `machine`."""
        rows = self.query("SELECT polled_at, jobs, calls FROM slurm_polls WHERE machine = ?", (machine,))  # type: ignore[attr-defined]
        return (rows[0][0], json.loads(rows[0][1]), rows[0][2]) if rows else None

    def save_slurm_poll(self, machine: str, jobs: dict[str, Any], polled_at: float) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT INTO slurm_polls (machine, polled_at, jobs, calls) VALUES (?, ?, ?, 1) "
                         "ON CONFLICT (machine) DO UPDATE SET polled_at = excluded.polled_at, jobs = excluded.jobs, "
                         "calls = calls + 1", (machine, polled_at, json.dumps(jobs)))

