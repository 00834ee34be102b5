"""`workbench runs compare`: runs side by side (the params that differ, each metric's last and best value,
checks) and their metrics' curves overlaid."""

from __future__ import annotations

import argparse
import shutil
from typing import Any

from workbench.cli.output import emit_json
from workbench.formatting import number_text
from workbench.textsafe import printable


def cmd_runs_compare(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    compared = wb.compare(args.runs)
    if args.json:
        emit_json(compared.to_json())
        return 0
    from workbench.textplot import overlay

    runs = compared.runs
    ids = [r.id for r in runs]
    rows = [["", *ids], ["run", *(f"{r.project}/{r.experiment}" for r in runs)],
            ["status", *(r.status for r in runs)], ["checks", *(r.verdict or "-" for r in runs)]]
    rows += [[name, *(number_text(v) for v in values)] for name, values in compared.params_differ.items()]
    from workbench.services.compare import last_and_best

    for name, metric in compared.metrics.items():
        way = "lowest" if metric.lower_is_better else "highest"
        last, best = last_and_best(metric)
        rows.append([f"{name} last", *last])
        rows.append([f"{name} {way}", *(text + (" *" if r.id == metric.best_run else "")
                                        for text, r in zip(best, metric.runs))])
    widths = [max(len(printable(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(printable(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    if compared.params_same:
        print("same in all: " + printable(", ".join(f"{k}={number_text(v)}" for k, v in compared.params_same.items())))
    print("* the best run of each metric")
    width = min(72, shutil.get_terminal_size().columns - 12)
    for name, metric in compared.metrics.items():
        chart = overlay(name, [(r.id, r.series) for r in metric.runs], width=width)
        if chart:
            print()
            print("\n".join(printable(line) for line in chart))
    return 0
