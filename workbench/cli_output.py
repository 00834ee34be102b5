"""What every CLI command prints through: JSON on stdout, messages on stderr (terminal escapes made
visible)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from workbench.jsonsafe import json_safe
from workbench.textsafe import printable


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(json_safe(data), separators=(",", ":"), default=str, allow_nan=False))
    sys.stdout.write("\n")


def say(message: str) -> None:
    print(printable(message), file=sys.stderr, flush=True)


def when(ts: float | None) -> str:
    return "-" if not ts else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def columns(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows (a header first) as aligned columns two spaces apart; cells are printed as given (make them
    printable first)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
