"""What every CLI command prints through: JSON on stdout, messages on stderr (terminal escapes made
visible), aligned columns, and the line said at a run's end."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from workbench.formatting import RunLike, number_text, pairs, run_seconds, seconds_text
from workbench.jsonsafe import json_safe
from workbench.textsafe import printable


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(json_safe(data), separators=(",", ":"), default=str, allow_nan=False))
    sys.stdout.write("\n")


def say(message: str) -> None:
    print(printable(message), file=sys.stderr, flush=True)


def columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows (a header first) as aligned columns two spaces apart; cells are printed as given (make them
    printable first)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def run_verdict(run: RunLike) -> str:
    """The line said when a run ends: `run ID succeeded in 3m07s (loss=0.1 …); checks pass`."""
    text = f"run {run.id} {run.status} in {seconds_text(run_seconds(run, time.time()))}"
    if run.status_reason:
        text += f": {run.status_reason}"
    if run.summary:
        text += f" ({pairs(run.summary, limit=6, value_text=number_text)})"
    if run.verdict:
        text += f"; checks {run.verdict}"
    return text
