"""Registered project folders and machines."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any


class ProjectQueries:
    conn: sqlite3.Connection

    def add_project(self, name: str, path: str) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT INTO projects (name, path, added_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET path = excluded.path",
                (name, path, time.time()),
            )

    def projects(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT name, path, added_at FROM projects ORDER BY name")]  # type: ignore[attr-defined]

    def project_by_path(self, path: str) -> dict[str, Any] | None:
        rows = self.query("SELECT name, path, added_at FROM projects WHERE path = ?", (path,))  # type: ignore[attr-defined]
        return dict(rows[0]) if rows else None

    def remove_project(self, name_or_path: str) -> bool:
        with self.tx() as conn:  # type: ignore[attr-defined]
            return conn.execute(
                "DELETE FROM projects WHERE name = ? OR path = ?", (name_or_path, name_or_path)
            ).rowcount > 0

    def ensure_machine(self, name: str, kind: str, address: str | None = None,
                       config: dict[str, Any] | None = None) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT OR IGNORE INTO machines (name, kind, address, config, added_at) VALUES (?, ?, ?, ?, ?)",
                (name, kind, address, json.dumps(config or {}), time.time()),
            )

    def machines(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("SELECT name, kind, address, config FROM machines ORDER BY name")]  # type: ignore[attr-defined]
