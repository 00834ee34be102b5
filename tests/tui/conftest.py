"""Fixtures for the TUI tests: a Workbench over a temporary data dir, seeded with a known history."""

from __future__ import annotations

import pytest

from fixture_db import seed
from workbench.services import Workbench


@pytest.fixture
def wb(home):
    workbench = Workbench()
    yield workbench
    workbench.close()


@pytest.fixture
def seeded(wb):
    seed(wb)
    return wb
