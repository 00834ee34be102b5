"""SVG snapshots at 80×24 and 120×40 over the fixture database, a frozen clock and a fixed machine sample."""

from __future__ import annotations

import os
import time

import pytest

from fixture_db import NOW
from test_remote_runs_in_app import remote_run
from workbench.machines.gpus import GpuInventory
from workbench.machines.local import LocalSample
from workbench.tui.app import WorkbenchApp


@pytest.fixture
def frozen_app(seeded, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    sample = LocalSample(cpus=16, load=(1.5, 1.2, 0.9), memory_used=12 << 30, memory_total=64 << 30,
                         disk_used=400 << 30, disk_total=1000 << 30,
                         gpus=GpuInventory([], error="NVML: Driver Not Loaded"))
    seeded.local_machine = seeded._services.local_machine = lambda: sample  # the facade's, and machine_stats'
    yield lambda: WorkbenchApp(seeded, clock=lambda: NOW)
    monkeypatch.delenv("TZ")
    time.tzset()


async def _settle(pilot):
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_dashboard(snap_compare, frozen_app, size):
    assert snap_compare(frozen_app(), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_runs(snap_compare, frozen_app, size):
    async def go(pilot):
        await pilot.press("4")
        await _settle(pilot)
    assert snap_compare(frozen_app(), terminal_size=size, run_before=go)


def test_run_detail_metrics(snap_compare, frozen_app):
    async def go(pilot):
        await pilot.press("4")
        await _settle(pilot)
        await pilot.press("enter")
        await _settle(pilot)
        await pilot.press("m")
        await _settle(pilot)
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=go)


def test_help(snap_compare, frozen_app):
    async def go(pilot):
        await pilot.press("4")
        await _settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=go)


def test_runs_with_an_unreachable_remote_run(snap_compare, frozen_app, seeded):
    """At 80 columns a page with a run on another machine keeps the machine column (the start time gives
    way); the run whose host does not answer is "running?", and the status line says which host."""
    remote_run(seeded, created=NOW - 60)

    async def go(pilot):
        await pilot.press("4")
        await _settle(pilot)
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=go)


def test_remote_run_detail_header(snap_compare, frozen_app, seeded):
    """Where a remote run's files live, and since when its host does not answer, one row each."""
    remote_run(seeded, created=NOW - 60)

    async def go(pilot):
        await pilot.press("4")
        await _settle(pilot)
        await pilot.press("enter")
        await _settle(pilot)
        await pilot.press("L")  # the log tab: the overview's events carry the wall clock's times
        await _settle(pilot)
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=go)
