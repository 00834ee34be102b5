"""Fixtures the services' tests share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import SAMPLES


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the mnist-notebook sample: sessions bring files back into it."""
    root = tmp_path / "mnist-notebook"
    shutil.copytree(SAMPLES / "mnist-notebook", root)
    return root
