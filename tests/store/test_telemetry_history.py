"""Stored GPU telemetry (store/telemetry.py): per second for the last hour, per minute after, gone after a month."""

from __future__ import annotations

from workbench.store import open_store


def test_telemetry_is_downsampled_to_minutes_after_an_hour(tmp_path):
    store = open_store(tmp_path / "wb.db")
    now = 1_800_000_000.0
    old = [("gpu-a", 0, now - 7200 + s, 50.0 + (s % 2) * 10, 1e9, 40.0, 300.0) for s in range(120)]
    recent = [("gpu-a", 0, now - 10 + s, 90.0, 2e9, 60.0, 600.0) for s in range(10)]
    store.add_telemetry(old + recent)
    folded = store.downsample_telemetry(now=now)
    assert folded == 120
    history = store.telemetry_since("gpu-a", now - 8000)[0]
    minutes = [p for p in history if p[0] < now - 3600]
    assert len(minutes) == 2 and all(p[1] == 55.0 for p in minutes)  # two 1-minute averages
    assert len([p for p in history if p[0] >= now - 3600]) == 10  # the last hour stays at 1 s
    store.downsample_telemetry(now=now + 31 * 86400)
    assert store.telemetry_since("gpu-a", 0) == {}  # past a month: gone
