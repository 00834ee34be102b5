"""Deployments: one record per name (its stable endpoint on a machine, the live version and container, the
operation in progress), the containers that served each version, and an append-only event per switch,
rollback, failed deploy and health change."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any


JSON_FIELDS = ("operation", "canary", "traffic_baseline")
TRAFFIC_KEPT = 900.0  # seconds of the watcher's samples kept per deployment


def decode_deployment(row: sqlite3.Row) -> dict[str, Any]:
    deployment = dict(row)
    for key in JSON_FIELDS:
        if deployment.get(key):
            deployment[key] = json.loads(deployment[key])
    return deployment


def holder(container: str) -> str:
    """What holds a deployment's GPUs in gpu_reservations (whose holders are otherwise run ids)."""
    return f"deployment:{container}"


class DeploymentQueries:
    conn: sqlite3.Connection

    def create_deployment(self, name: str, model: str, machine: str, port: int, bind: str = "0.0.0.0",
                          auth: str = "none") -> bool:
        """A new deployment record (False when the name exists)."""
        now = time.time()
        with self.tx() as conn:  # type: ignore[attr-defined]
            return conn.execute(
                "INSERT OR IGNORE INTO deployments (name, model, machine, port, bind, auth, status, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, 'new', ?, ?)",
                (name, model, machine, port, bind, auth, now, now)).rowcount > 0

    def has_live_deployments(self) -> bool:
        return bool(self.query("SELECT EXISTS (SELECT 1 FROM deployments WHERE status = 'live')")[0][0])  # type: ignore[attr-defined]

    def forget_deployment(self, name: str) -> None:
        """A record that never served (a deploy refused before it went live): gone with the events it made
        (the history of an earlier deployment of that name stays)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            row = conn.execute("SELECT created_at FROM deployments WHERE name = ? AND live_version IS NULL",
                               (name,)).fetchone()
            if row is None:
                return
            conn.execute("DELETE FROM deployments WHERE name = ?", (name,))
            conn.execute("DELETE FROM deployment_events WHERE deployment = ? AND ts >= ?", (name, row[0]))
            conn.execute("DELETE FROM deployment_traffic WHERE deployment = ?", (name,))

    def set_health(self, name: str, health: str) -> bool:
        """Records the deployment's health now; True when it changed (so the watcher and a command's look,
        seeing the same change at once, record one event between them)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            changed = conn.execute("UPDATE deployments SET health = ?, health_at = ?, updated_at = ? WHERE name = ? "
                                   "AND health IS NOT ?", (health, time.time(), time.time(), name, health)).rowcount
            if not changed:
                conn.execute("UPDATE deployments SET health_at = ? WHERE name = ?", (time.time(), name))
            return changed > 0

    def touch_canary(self, name: str, container: str, ts: float) -> None:
        """The watcher looked at this canary at `ts` (only while it is still the deployment's canary)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE deployments SET canary = json_set(canary, '$.watched_at', ?) WHERE name = ? "
                         "AND json_extract(canary, '$.container') = ?", (ts, name, container))

    def has_watched_deployments(self) -> bool:
        return bool(self.query("SELECT EXISTS (SELECT 1 FROM deployments WHERE status = 'live' "  # type: ignore[attr-defined]
                               "OR canary IS NOT NULL)")[0][0])

    def add_traffic_sample(self, name: str, counters: dict[str, Any]) -> None:
        now = time.time()
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT OR REPLACE INTO deployment_traffic (deployment, ts, counters) VALUES (?, ?, ?)",
                         (name, now, json.dumps(counters)))
            conn.execute("DELETE FROM deployment_traffic WHERE deployment = ? AND ts < ?", (name, now - TRAFFIC_KEPT))

    def traffic_sample_before(self, name: str, ts: float) -> tuple[float, dict[str, Any]] | None:
        """The latest sample taken at or before `ts` (None without one)."""
        rows = self.query("SELECT ts, counters FROM deployment_traffic WHERE deployment = ? AND ts <= ? "  # type: ignore[attr-defined]
                          "ORDER BY ts DESC LIMIT 1", (name, ts))
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM deployments WHERE name = ?", (name,))  # type: ignore[attr-defined]
        return decode_deployment(rows[0]) if rows else None

    def deployments(self) -> list[dict[str, Any]]:
        return [decode_deployment(r) for r in self.query("SELECT * FROM deployments ORDER BY name")]  # type: ignore[attr-defined]

    def update_deployment(self, name: str, **fields: Any) -> None:
        for key in JSON_FIELDS:
            if fields.get(key) is not None:
                fields[key] = json.dumps(fields[key])
        fields["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(f"UPDATE deployments SET {sets} WHERE name = ?", (*fields.values(), name))

    def remove_deployment(self, name: str) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            for (container,) in conn.execute("SELECT container FROM deployment_targets WHERE deployment = ?", (name,)):
                conn.execute("DELETE FROM gpu_reservations WHERE run_id = ?", (holder(container),))
            conn.execute("DELETE FROM deployments WHERE name = ?", (name,))
            conn.execute("DELETE FROM deployment_traffic WHERE deployment = ?", (name,))

    def add_target(self, deployment: str, container: str, version: int, sha256: str, state: str, *,
                   snapshot: str | None, machine: str, gpu_uuids: list[str],
                   launch: dict[str, Any] | None = None) -> None:
        """A serving container of a version, with its GPUs reserved (as a run's are) while it exists, and
        `launch`: how to start it again once its container is gone."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT OR REPLACE INTO deployment_targets (deployment, container, version, sha256, snapshot, "
                         "gpu_uuids, state, state_at, created_at, launch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (deployment, container, version, sha256, snapshot, json.dumps(gpu_uuids), state, time.time(),
                          time.time(), json.dumps(launch) if launch is not None else None))
            for uuid in gpu_uuids:
                conn.execute("INSERT INTO gpu_reservations (machine, uuid, run_id, reserved_at) VALUES (?, ?, ?, ?)",
                             (machine, uuid, holder(container), time.time()))

    def set_target_state(self, deployment: str, container: str, state: str) -> None:
        """`removed`, `failed` and `standby-gone` (removed for --stop-first, kept as its image) targets give their
        GPUs back (a stopped standby keeps them: it may come back as it is)."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE deployment_targets SET state = ?, state_at = ? WHERE deployment = ? AND container = ?",
                         (state, time.time(), deployment, container))
            if state in ("removed", "failed", "standby-gone"):
                conn.execute("DELETE FROM gpu_reservations WHERE run_id = ?", (holder(container),))

    def targets(self, deployment: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM deployment_targets WHERE deployment = ? ORDER BY created_at",  # type: ignore[attr-defined]
                          (deployment,))
        return [{**dict(r), "gpu_uuids": json.loads(r["gpu_uuids"]),
                 "launch": json.loads(r["launch"]) if r["launch"] else None} for r in rows]

    def add_deployment_event(self, deployment: str, kind: str, message: str, *, from_version: int | None = None,
                             to_version: int | None = None, health: str | None = None) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT INTO deployment_events (ts, deployment, kind, from_version, to_version, health, message) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (time.time(), deployment, kind, from_version, to_version, health, message))

    def deployment_events(self, deployment: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM (SELECT * FROM deployment_events WHERE deployment = ? ORDER BY id DESC LIMIT ?) "  # type: ignore[attr-defined]
                          "ORDER BY id", (deployment, limit))
        return [dict(r) for r in rows]
