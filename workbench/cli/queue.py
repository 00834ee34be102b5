"""`workbench queue`: the runs waiting for a machine, in the order they will start, and why each waits."""

from __future__ import annotations

import argparse
import shutil
import textwrap
import time
from typing import Any, Callable

from workbench.cli.output import emit_json
from workbench.formatting import elide, seconds_text
from workbench.textsafe import printable


def cmd_queue(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    waiting = wb.queue()
    if args.json:
        emit_json([{**run.to_json(), "priority": run.priority, "waiting": run.waiting}
                   for run in waiting])
        return 0
    if not waiting:
        print("the queue is empty")
        return 0
    now = time.time()
    rows = [("ID", "PRI", "GPUS", "PROJECT/EXPERIMENT", "WAITING", "REASON")]
    for run in waiting:
        rows.append((run.id, str(run.priority), str((run.waiting or {}).get("gpus", 0)),
                     elide(printable(f"{run.project}/{run.experiment}"), _QUEUE_NAME_WIDTH),
                     seconds_text(now - run.created_at), printable(run.status_reason or "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    indent = sum(widths) + 2 * len(widths)
    rest = max(20, shutil.get_terminal_size().columns - indent)
    for row in rows:  # the reason whole, wrapped by words under its column
        reason = textwrap.wrap(row[-1], rest, break_long_words=False, break_on_hyphens=False) or [""]
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + reason[0])
        for line in reason[1:]:
            print(" " * indent + line)
    return 0


_QUEUE_NAME_WIDTH = 24  # PROJECT/EXPERIMENT in `queue`: longer names end in `…`, leaving the reason room


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    command(sub, "queue", cmd_queue, "the runs waiting for a machine, in the order they will start")
