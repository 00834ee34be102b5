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
