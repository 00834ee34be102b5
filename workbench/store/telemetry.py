"""GPU telemetry history, downsampled: 1-second samples kept for an hour, then folded into 1-minute
averages kept for a month. Sparklines survive a restart; later issues can show a run's GPU usage."""

from __future__ import annotations

import time
from typing import Any, Iterable

RAW_SECONDS = 3600
MINUTE_SECONDS = 30 * 86400


class TelemetryQueries:
    def add_telemetry(self, rows: Iterable[tuple[str, int, float, float | None, float | None, float | None,
                                              float | None]]) -> None:
        """(machine, gpu, ts, utilization, memory_used, temperature, power) at 1-second resolution."""
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.executemany(
                "INSERT OR REPLACE INTO telemetry (machine, gpu, ts, resolution, utilization, memory_used, "
                "temperature, power) VALUES (?, ?, round(?), 1, ?, ?, ?, ?)", list(rows))

    def downsample_telemetry(self, now: float | None = None) -> int:
        """Folds 1-second samples older than an hour into per-minute averages; drops what is past a month."""
        now = now or time.time()
        cutoff = now - RAW_SECONDS
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute(
                "INSERT OR REPLACE INTO telemetry (machine, gpu, ts, resolution, utilization, memory_used, "
                "temperature, power) SELECT machine, gpu, CAST(ts / 60 AS INTEGER) * 60.0, 60, avg(utilization), "
                "avg(memory_used), avg(temperature), avg(power) FROM telemetry WHERE resolution = 1 AND ts < ? "
                "GROUP BY machine, gpu, CAST(ts / 60 AS INTEGER)", (cutoff,))
            folded = conn.execute("DELETE FROM telemetry WHERE resolution = 1 AND ts < ?", (cutoff,)).rowcount
            conn.execute("DELETE FROM telemetry WHERE resolution = 60 AND ts < ?", (now - MINUTE_SECONDS,))
        return folded

    def telemetry_since(self, machine: str, since: float) -> dict[int, list[tuple[float, Any]]]:
        """Per GPU: (ts, utilization, memory_used) at the finest resolution kept, oldest first."""
        out: dict[int, list[tuple[float, Any]]] = {}
        for gpu, ts, util, mem in self.query(  # type: ignore[attr-defined]
                "SELECT gpu, ts, utilization, memory_used FROM telemetry WHERE machine = ? AND ts >= ? "
                "ORDER BY gpu, resolution DESC, ts", (machine, since)):
            out.setdefault(gpu, []).append((ts, util, mem))
        return out
