"""What the notebook runner (workbench/runtime/workbench_nbrun.py) says in a run's log that Workbench reads
back: the cell starting now (the live progress line) and, last, why the notebook failed (the run's reason)."""

from __future__ import annotations

import re

CELL = re.compile(rb"\[workbench\] (cell \d+/\d+): ?([^\r\n]*)")
FAILED = re.compile(rb"\[workbench\] (notebook failed[^\r\n]*)")


def last_cell(data: bytes) -> str | None:
    """The last cell marker in `data`: `cell 7/23: model.fit(x)`."""
    found = None
    for found in CELL.finditer(data):
        pass
    if found is None:
        return None
    what = found.group(2).decode("utf-8", "replace").strip()
    return found.group(1).decode() + (f": {what}" if what else "")


def failure_reason(log_tail: bytes) -> str | None:
    """The runner's last word on a failed notebook: `notebook failed at cell 7/23 (x = 1/0): ZeroDivisionError: …`."""
    found = None
    for found in FAILED.finditer(log_tail):
        pass
    return found.group(1).decode("utf-8", "replace").strip() if found else None
