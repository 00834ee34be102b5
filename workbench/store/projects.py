"""Registered project folders (ordinary table work: sqlite-utils)."""

from __future__ import annotations

import time
from typing import Any


class ProjectQueries:
    def add_project(self, name: str, path: str) -> None:
        with self.tx():  # type: ignore[attr-defined]
            self.db["projects"].upsert({"name": name, "path": path, "added_at": time.time()}, pk="name")  # type: ignore[attr-defined]

    def register_project(self, name: str, path: str) -> None:
        """A launched folder, registered unless its name or its folder already is (plain SQL: a launch need
        not import sqlite-utils)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT OR IGNORE INTO projects (name, path, added_at) VALUES (?, ?, ?)",
                         (name, path, time.time()))

    def projects(self) -> list[dict[str, Any]]:
        with self.lock:  # type: ignore[attr-defined]
            return list(self.db["projects"].rows_where(order_by="name"))  # type: ignore[attr-defined]

    def project_names(self) -> list[str]:
        """Plain SQL: the Runs screen asks on its first paint, before sqlite-utils is worth importing."""
        return [r[0] for r in self.query("SELECT name FROM projects ORDER BY name")]  # type: ignore[attr-defined]

    def remove_project(self, name_or_path: str) -> bool:
        with self.tx():  # type: ignore[attr-defined]
            table = self.db["projects"]  # type: ignore[attr-defined]
            before = table.count
            table.delete_where("name = ? OR path = ?", [name_or_path, name_or_path])
            return table.count < before
