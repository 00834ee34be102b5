"""Workbench: a local-first, keyboard-driven workstation for ML experiments."""

__version__ = "0.1.0"
