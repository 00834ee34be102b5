"""Deployments: one record per name (its stable endpoint on a machine, the live version and container, the
operation in progress), the containers that served each version, and an append-only event per switch,
rollback, failed deploy and health change."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any


def decode_deployment(row: sqlite3.Row) -> dict[str, Any]:
    deployment = dict(row)
    if deployment.get("operation"):
        deployment["operation"] = json.loads(deployment["operation"])
    return deployment


def holder(container: str) -> str:
    """What holds a deployment's GPUs in gpu_reservations (whose holders are otherwise run ids)."""
    return f"deployment:{container}"


class DeploymentQueries:
    conn: sqlite3.Connection

    def create_deployment(self, name: str, model: str, machine: str, port: int) -> bool:
        """A new deployment record (False when the name exists)."""
        now = time.time()
        with self.tx() as conn:  # type: ignore[attr-defined]
            return conn.execute(
                "INSERT OR IGNORE INTO deployments (name, model, machine, port, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 'new', ?, ?)", (name, model, machine, port, now, now)).rowcount > 0

    def has_live_deployments(self) -> bool:
        return bool(self.query("SELECT EXISTS (SELECT 1 FROM deployments WHERE status = 'live')")[0][0])  # type: ignore[attr-defined]

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM deployments WHERE name = ?", (name,))  # type: ignore[attr-defined]
        return decode_deployment(rows[0]) if rows else None

    def deployments(self) -> list[dict[str, Any]]:
        return [decode_deployment(r) for r in self.query("SELECT * FROM deployments ORDER BY name")]  # type: ignore[attr-defined]

    def update_deployment(self, name: str, **fields: Any) -> None:
        if "operation" in fields and fields["operation"] is not None:
            fields["operation"] = json.dumps(fields["operation"])
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(f"UPDATE deployments SET {sets} WHERE name = ?", (*fields.values(), name))

    def remove_deployment(self, name: str) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            for (container,) in conn.execute("SELECT container FROM deployment_targets WHERE deployment = ?", (name,)):
                conn.execute("DELETE FROM gpu_reservations WHERE run_id = ?", (holder(container),))
            conn.execute("DELETE FROM deployments WHERE name = ?", (name,))

    def add_target(self, deployment: str, container: str, version: int, sha256: str, state: str, *,
                   snapshot: str | None, machine: str, gpu_uuids: list[str]) -> None:
        """A serving container of a version, with its GPUs reserved (as a run's are) while it exists."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT OR REPLACE INTO deployment_targets (deployment, container, version, sha256, snapshot, "
                         "gpu_uuids, state, state_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (deployment, container, version, sha256, snapshot, json.dumps(gpu_uuids), state, time.time(),
                          time.time()))
            for uuid in gpu_uuids:
                conn.execute("INSERT INTO gpu_reservations (machine, uuid, run_id, reserved_at) VALUES (?, ?, ?, ?)",
                             (machine, uuid, holder(container), time.time()))

    def set_target_state(self, deployment: str, container: str, state: str) -> None:
        """`removed` and `failed` targets give their GPUs back (a stopped standby keeps them: it may come back)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE deployment_targets SET state = ?, state_at = ? WHERE deployment = ? AND container = ?",
                         (state, time.time(), deployment, container))
            if state in ("removed", "failed"):
                conn.execute("DELETE FROM gpu_reservations WHERE run_id = ?", (holder(container),))

    def targets(self, deployment: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM deployment_targets WHERE deployment = ? ORDER BY created_at",  # type: ignore[attr-defined]
                          (deployment,))
        return [{**dict(r), "gpu_uuids": json.loads(r["gpu_uuids"])} for r in rows]

    def add_deployment_event(self, deployment: str, kind: str, message: str, *, from_version: int | None = None,
                             to_version: int | None = None, health: str | None = None) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT INTO deployment_events (ts, deployment, kind, from_version, to_version, health, message) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (time.time(), deployment, kind, from_version, to_version, health, message))

    def deployment_events(self, deployment: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM (SELECT * FROM deployment_events WHERE deployment = ? ORDER BY id DESC LIMIT ?) "  # type: ignore[attr-defined]
                          "ORDER BY id", (deployment, limit))
        return [dict(r) for r in rows]
