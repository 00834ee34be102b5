"""Fixtures for the TUI tests: a Workbench over a temporary data dir, seeded with a known history."""

from __future__ import annotations

import pytest

from fixture_db import seed
from workbench.services import Workbench
from workbench.tui.app import finish_stopping


@pytest.fixture
def wb(home):
    workbench = Workbench()
    yield workbench
    finish_stopping()  # what the app handed off to stop writes to the database last
    workbench.close()


@pytest.fixture
def seeded(wb):
    seed(wb)
    return wb
