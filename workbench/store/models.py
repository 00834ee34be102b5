"""The model registry's records: versions (numbered per name in the transaction that adds one), aliases,
and the append-only history of every alias move."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any


def decode_version(row: sqlite3.Row) -> dict[str, Any]:
    version = dict(row)
    version["lineage"] = json.loads(version["lineage"])
    version["forced"] = bool(version["forced"])
    return version


class ModelQueries:
    conn: sqlite3.Connection

    def add_model_version(self, name: str, *, sha256: str, size: int, filename: str, run_id: str, artifact: str,
                          lineage: dict[str, Any], forced: bool) -> dict[str, Any]:
        with self.tx() as conn:  # type: ignore[attr-defined]
            number = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE name = ?",
                                  (name,)).fetchone()[0]
            conn.execute(
                "INSERT INTO model_versions (name, version, sha256, size, filename, run_id, artifact, lineage, forced, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, number, sha256, size, filename, run_id, artifact, json.dumps(lineage), int(forced), time.time()))
        return self.model_version(name, number)  # type: ignore[return-value]

    def model_version(self, name: str, version: int) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM model_versions WHERE name = ? AND version = ?",  # type: ignore[attr-defined]
                          (name, version))
        return decode_version(rows[0]) if rows else None

    def latest_model_version(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM model_versions WHERE name = ? ORDER BY version DESC LIMIT 1",  # type: ignore[attr-defined]
                          (name,))
        return decode_version(rows[0]) if rows else None

    def model_versions(self, name: str) -> list[dict[str, Any]]:
        return [decode_version(r) for r in self.query(  # type: ignore[attr-defined]
            "SELECT * FROM model_versions WHERE name = ? ORDER BY version", (name,))]

    def models(self) -> list[dict[str, Any]]:
        """Each model: its name, how many versions, the latest, when it was last registered."""
        return [dict(r) for r in self.query(  # type: ignore[attr-defined]
            "SELECT name, count(*) AS versions, max(version) AS latest, max(created_at) AS updated_at "
            "FROM model_versions GROUP BY name ORDER BY name")]

    def model_aliases(self, name: str) -> dict[str, int]:
        return {r["alias"]: r["version"] for r in self.query(  # type: ignore[attr-defined]
            "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,))}

    def set_model_alias(self, name: str, alias: str, version: int, who: str) -> int | None:
        """Points `alias` at `version`, and appends the move to the history; the version it pointed at."""
        now = time.time()
        with self.tx() as conn:  # type: ignore[attr-defined]
            row = conn.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            previous = row[0] if row else None
            conn.execute("INSERT INTO model_aliases (name, alias, version, set_at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, set_at = excluded.set_at",
                         (name, alias, version, now))
            conn.execute("INSERT INTO model_alias_history (ts, name, alias, version, previous, who) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (now, name, alias, version, previous, who))
        return previous

    def model_alias_history(self, name: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query(  # type: ignore[attr-defined]
            "SELECT ts, alias, version, previous, who FROM model_alias_history WHERE name = ? ORDER BY id", (name,))]

    def model_blobs_in_use(self) -> set[str]:
        return {r[0] for r in self.query("SELECT DISTINCT sha256 FROM model_versions")}  # type: ignore[attr-defined]
