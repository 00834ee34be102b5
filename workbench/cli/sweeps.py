"""`workbench sweep` and `workbench sweeps ...`: an experiment's sweep run as trials through the queue."""

from __future__ import annotations

import argparse
import shutil
from typing import Any, Callable

from workbench.cli.output import columns, emit_json, say
from workbench.formatting import number_text
from workbench.textsafe import printable


def cmd_sweep(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile(wait=0)
    sweep = wb.sweep(args.path, args.experiment, args.param, machine=args.machine, executor=args.executor,
                     priority=args.priority)
    if args.json:
        emit_json(wb.sweep_summary(sweep.id).to_json())
    else:
        print(sweep.id)
        say(f"sweep {sweep.id} started: `workbench sweeps show {sweep.id}` follows it; it goes on without "
            "this command")
    return 0


def cmd_sweeps_list(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    listed = wb.sweeps()
    if args.json:
        emit_json([s.to_json(trials=False) for s in listed])
        return 0
    if not listed:
        say("no sweeps yet: start one with `workbench sweep PATH`")
        return 0
    costs = any(s.cost for s in listed)
    rows = [("ID", "STATUS", "PROJECT/EXPERIMENT", "METHOD", "TRIALS", "PROGRESS", "BEST") + (("COST",) if costs else ())]
    for s in listed:
        progress = ", ".join(f"{n} {status}" for status, n in sorted(s.progress.items()))
        rows.append((s.id, s.status, printable(f"{s.project}/{s.experiment}"), s.method,
                     str(s.options["trials"]), progress or "none yet", s.best or "-")
                    + ((f"${s.cost:.2f}" if s.cost else "-",) if costs else ()))
    for line in columns(rows):
        print(line)
    return 0


def cmd_sweeps_show(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    summary = wb.sweep_summary(args.sweep)
    if args.json:
        emit_json(summary.to_json())
        return 0
    options = summary.options
    objective = options.get("objective")
    print(f"sweep {summary.id}  {summary.status}  {printable(summary.project)}/"
          f"{printable(summary.experiment)}  {summary.method}, {options['trials']} trials, at most "
          f"{options['max_parallel']} at once" + (f", {options['direction']} {objective}" if objective else ""))
    if summary.status_reason:
        print(f"  {printable(summary.status_reason)}")
    if summary.cost is not None:
        print(f"  cost so far ${summary.cost:.2f}" + (f" of a ${options['budget']:.2f} budget" if options.get("budget") else ""))
    names = list(summary.space)
    header = ["TRIAL", "RUN", "STATUS", *(n.upper() for n in names), (objective or "objective").upper()]
    rows = [header] + [[str(t.trial + 1), t.id, t.status, *(number_text(t.params.get(n)) for n in names),
                        "-" if t.objective is None else f"{t.objective:.6g}"] for t in summary.trials]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(printable(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    if objective:
        from workbench.textplot import param_scatter
        for name in names:
            chart = param_scatter(summary.trials, name, objective, width=min(60, shutil.get_terminal_size().columns - 12))
            if chart:
                print()
                print("\n".join(chart))
    return 0


def cmd_sweeps_cancel(wb: Any, args: argparse.Namespace) -> int:
    sweep = wb.cancel_sweep(args.sweep)
    if args.json:
        emit_json(wb.sweep_summary(sweep.id).to_json())
    else:
        say(f"sweep {sweep.id} {sweep.status}")
    return 0


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command(sub, "sweep", cmd_sweep, "run an experiment's [experiments.X.sweep] as trials through the queue")
    p.add_argument("path", help="project folder (holds workbench.toml)")
    p.add_argument("-e", "--experiment", help="experiment name (optional when the spec declares one)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="set a param not swept")
    p.add_argument("--machine", help="where trials run: a machine or auto (default: the experiment's, else auto)")
    p.add_argument("--executor", choices=("docker", "process"))
    p.add_argument("--priority", type=int, default=0)
    sweeps = sub.add_parser("sweeps", help="sweeps and their trials").add_subparsers(
        dest="sweeps_command", metavar="ACTION", required=True)
    command(sweeps, "list", cmd_sweeps_list, "list sweeps, newest first")
    p = command(sweeps, "show", cmd_sweeps_show, "a sweep's trials, best first, and how each param relates to the objective")
    p.add_argument("sweep", help="sweep id or unique prefix")
    p = command(sweeps, "cancel", cmd_sweeps_cancel, "stop a sweep: its queued trials leave the queue, running ones stop")
    p.add_argument("sweep")
