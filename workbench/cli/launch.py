"""`workbench run` and `workbench runs rerun`: start a run, then print its id or follow it to its end."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from workbench.cli.logs import ProgressLine, log_printer
from workbench.cli.output import emit_json, run_verdict, say


def cmd_run(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile(wait=0)  # hosts' passes go on meanwhile: a launch never waits for another machine
    run = wb.launch(args.path, args.experiment, args.param, machine=args.machine, executor=args.executor,
                    priority=args.priority)
    if run.waiting is not None and not args.wait:
        if args.json:
            emit_json({**run.to_json(), "priority": run.priority})
        else:
            print(run.id)
            # the launch said "run ID queued: REASON": only where to look is added
            say("it starts by itself when a machine can take it (`workbench queue` shows the queue)")
        return 0
    return _after_start(wb, run, args)


def cmd_rerun(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    run = wb.rerun(args.run, executor=args.executor)
    say(f"run {run.id} reruns {run.rerun_of} from snapshot {run.snapshot[:12]}")
    return _after_start(wb, run, args)


def _after_start(wb: Any, run: Any, args: argparse.Namespace) -> int:
    if not args.wait:
        wb.follow_in_background(run.id)
        if args.json:
            emit_json(run.to_json())
        else:
            print(run.id)
            say(f"run {run.id} started ({run.executor}); follow it with `workbench runs logs {run.id} --follow`")
        return 0
    if run.waiting is not None:
        say(f"waiting for run {run.id} to start and end (Ctrl-C leaves it queued)")  # why: said by the launch
    else:
        say(f"run {run.id} started ({run.executor}); waiting for it (Ctrl-C leaves it running)")
    progress = None if args.json else ProgressLine()
    sink = None if args.json else log_printer(timestamps=False, progress=progress)
    try:
        final = wb.wait(run.id, sink=sink, progress=progress.show if progress else None)
    except KeyboardInterrupt:
        wb.follow_in_background(run.id)  # the run goes on; so does its ingestion
        say(f"stopped waiting; run {run.id} keeps running (`workbench runs logs {run.id} --follow`)")
        return 130
    if args.json:
        emit_json(final.to_json())
    else:
        say(run_verdict(final))
    return 0 if final.status == "succeeded" else 1


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command(sub, "run", cmd_run, "launch an experiment of a project folder")
    p.add_argument("path", help="project folder (holds workbench.toml)")
    p.add_argument("-e", "--experiment", help="experiment name (optional when the spec declares one)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override a param")
    p.add_argument("--machine", help="machine to run on: local, an SSH machine's name (see `machines list`), "
                                     "or auto: the cheapest free one, else the queue (default: the "
                                     "experiment's machine/machines, else local)")
    p.add_argument("--executor", choices=("docker", "process", "slurm"),
                   help="default: docker if an engine answers (slurm on a Slurm machine)")
    p.add_argument("--priority", type=int, default=0, help="queue order: higher first, then first come (default 0)")
    p.add_argument("--wait", action="store_true", help="follow the run's logs until it ends")
