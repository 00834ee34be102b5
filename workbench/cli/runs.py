"""`workbench runs ...`: the run history (list, show, logs, notebook, cancel, rerun, compare, pull, rm)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any, Callable

from workbench.cli.compare import cmd_runs_compare
from workbench.cli.launch import cmd_rerun
from workbench.cli.logs import ProgressLine, log_printer
from workbench.cli.output import emit_json, run_verdict, say
from workbench.cli.runs_table import runs_table
from workbench.formatting import human_bytes, number_text, run_seconds, seconds_text, when
from workbench.textsafe import printable

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "lost")


def cmd_runs_list(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    filters = dict(limit=args.limit or None, status=args.status, project=args.project, experiment=args.experiment)
    if args.json:
        sys.stdout.write(wb.runs_json(**filters))
        sys.stdout.write("\n")
        return 0
    runs = wb.runs(**filters)
    if not runs:
        given = [f"--{name} {value}" for name in ("status", "project", "experiment")
                 if (value := getattr(args, name)) is not None]
        say(f"no run matches {' '.join(given)}" if given else "no runs yet: start one with `workbench run PATH`")
        return 0
    for line in runs_table(runs, shutil.get_terminal_size().columns, wb.lead_metrics(runs)):
        print(line)
    return 0


def cmd_runs_show(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    run = wb.show(args.run)
    if args.json:
        emit_json(run.to_json())
        return 0
    print(f"run {run.id}  {run.status}" + (f"  ({printable(run.status_reason)})" if run.status_reason else ""))
    fields = [
        ("project", f"{run.project}  ({run.project_path})"), ("experiment", run.experiment),
        ("machine", f"{run.machine}  executor={run.executor}"
                    + (f"  slurm job {run.slurm_job}" if run.slurm_job else "")),
        ("created", when(run.created_at)), ("started", when(run.started_at)),
        ("finished", when(run.finished_at)), ("duration", seconds_text(run_seconds(run, time.time()))),
        ("exit code", run.exit_code), ("params", json.dumps(run.params)),
        ("argv", json.dumps(run.argv)), ("env", json.dumps(run.env)),
        ("image", f"{run.image or '-'}  {run.image_id or ''}" + (
            f"  ({human_bytes(run.image_size)}, {run.image_size:,} bytes)" if run.image_size is not None else "")),
        ("snapshot", run.snapshot),
        ("git", f"{run.git_commit or '-'}" + (
            "  (dirty: diff recorded)" if run.git_dirty
            else "  (state " + next((e.message[len("git state "):] for e in run.events
                                     if e.message.startswith("git state unknown: ")), "unknown") + ")"
            if run.git_commit and run.git_dirty is None else "")
            + "".join(f"  ({e.message.split(':')[0]})" for e in run.events if e.kind == "git")),
        ("placed", _placement_text(run.placement)),
        ("gpus", ", ".join(run.gpu_uuids or []) or "none"),
        ("rerun of", run.rerun_of), ("run dir", run.run_dir), ("files on", run.host_run_dir),
    ]
    for name, value in fields:
        if value not in (None, ""):
            print(f"  {name:<11}{printable(str(value))}")
    if run.metrics:
        print("metrics")
        for name, m in run.metrics.items():
            print(f"  {printable(name):<16} last={number_text(m.last)}  min={number_text(m.min)}  "
                  f"max={number_text(m.max)}  points={m.points}")
    if run.bad_metric_lines or run.bad_metric_values:
        print(f"  skipped: {run.bad_metric_lines} line(s) that were not JSON objects, "
              f"{run.bad_metric_values} non-numeric value(s)")
    if run.checks:
        print(f"checks: {run.verdict.upper()}")
        for c in run.checks:
            value = "missing" if c.value is None else number_text(c.value)
            print(f"  {'pass' if c.passed else 'FAIL'}  {printable(c.expression):<24} value={value}")
    if run.artifacts:
        print("artifacts")
        for a in run.artifacts:
            if a.link is not None:
                print(f"  {printable(a.path):<24} link to {printable(a.link)} (not followed)")
            else:
                print(f"  {printable(a.path):<24} {a.size:>12,} bytes  sha256:{a.sha256[:16]}")
    if run.events:
        print("events")
        width = max(len(e.kind) for e in run.events)
        for e in run.events:
            print(f"  {when(e.ts)}  {printable(e.kind):<{width}}  {printable(e.message)}")
    return 0


def _placement_text(placement: dict[str, Any] | None) -> str | None:
    """Where placement sent a run and why, and what was asked: "gpu-b: 2 of 4 GPUs free  (asked: auto, 2 GPUs)"."""
    if not placement:
        return None
    request = placement.get("request") or {}
    machines = request.get("machines")
    asked = [", ".join(machines) if isinstance(machines, list) else machines,
             f"{request['gpus']} GPU(s)" if request.get("gpus") is not None else None]
    asked_text = ", ".join(str(part) for part in asked if part)
    return (placement.get("reason") or placement.get("machine") or "-") + (f"  (asked: {asked_text})" if asked_text else "")


def cmd_runs_logs(wb: Any, args: argparse.Namespace) -> int:
    progress = ProgressLine() if args.follow else None
    sink = log_printer(timestamps=args.timestamps, raw=args.raw, progress=progress)
    if not args.follow:
        wb.reconcile()
    for data in wb.logs(args.run, follow=args.follow, on_progress=progress.show if progress else None):
        sink(data)
    if progress is not None:
        progress.show("")  # the run has ended: its last state is in the log above
    return 0


def cmd_runs_notebook(wb: Any, args: argparse.Namespace) -> int:
    """The executed notebook, rendered: paged like `less` on a terminal (colours kept), else plain text."""
    from rich.console import Console

    from workbench.notebook_render import NotebookError, render

    path = wb.run_notebook(args.run)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise NotebookError(f"cannot read {path}: {exc.strerror or exc}") from None
    console = Console(highlight=False)
    if not console.is_terminal:  # a file or a pipe: no escape codes, and long lines left whole
        console = Console(highlight=False, soft_wrap=True)
    renderables = render(text, path=str(path), plain=not console.is_terminal)
    if args.no_pager or not console.is_terminal:
        for renderable in renderables:
            console.print(renderable)
        return 0
    os.environ.setdefault("LESS", "FRX")  # as git does: colours shown, one screen not paged, screen kept after
    with console.pager(styles=True):
        for renderable in renderables:
            console.print(renderable)
    return 0


def cmd_runs_cancel(wb: Any, args: argparse.Namespace) -> int:
    before = wb.run(args.run).status
    run = wb.cancel(args.run)
    if args.json:
        emit_json(run.to_json())
    elif before not in ("queued", "running"):
        say(f"run {run.id} already {run.status}; nothing to cancel")
    else:
        say(run_verdict(run))
    return 0


def cmd_runs_pull(wb: Any, args: argparse.Namespace) -> int:
    copied = wb.pull(args.run, args.paths)
    run_dir = wb.run_out_dir(args.run)
    if args.json:
        emit_json({"dir": str(run_dir), "files": [{"path": p, "bytes": n} for p, n in copied]})
        return 0
    fetched = sum(1 for _, n in copied if n)
    say(f"{len(copied)} file(s) in {run_dir}: {fetched} copied ({sum(n for _, n in copied):,} bytes), "
        f"{len(copied) - fetched} already there")
    return 0


def cmd_runs_rm(wb: Any, args: argparse.Namespace) -> int:
    removed = [wb.remove(ref, force=args.force) for ref in args.runs]
    if args.json:
        emit_json({"removed": removed})
    else:
        for run_id in removed:
            say(f"removed run {run_id}")
    return 0


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    runs = sub.add_parser("runs", help="the run history").add_subparsers(dest="runs_command", metavar="ACTION",
                                                                         required=True)
    p = command(runs, "list", cmd_runs_list, "list runs, newest first")
    p.add_argument("--status", choices=RUN_STATUSES)
    p.add_argument("--project")
    p.add_argument("--experiment")
    p.add_argument("--limit", type=int, default=100, help="rows to show (0 = all; default 100)")
    p = command(runs, "show", cmd_runs_show, "everything recorded about a run")
    p.add_argument("run", help="run id or unique prefix")
    p = command(runs, "logs", cmd_runs_logs, "print a run's logs", json_flag=False)
    p.add_argument("run")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    p.add_argument("-t", "--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("--raw", action="store_true", help="print lines byte for byte (terminal escapes included)")
    p = command(runs, "notebook", cmd_runs_notebook, "a notebook run's executed notebook, with its outputs",
                json_flag=False)
    p.add_argument("run")
    p.add_argument("--no-pager", action="store_true", help="print it without a pager (on a terminal too)")
    p = command(runs, "cancel", cmd_runs_cancel, "stop a running run")
    p.add_argument("run")
    p = command(runs, "rerun", cmd_rerun, "start an identical run from the stored snapshot and image")
    p.add_argument("run")
    p.add_argument("--executor", choices=("docker", "process"))
    p.add_argument("--wait", action="store_true")
    p = command(runs, "compare", cmd_runs_compare, "runs side by side: differing params, metrics (best marked), checks, charts")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p = command(runs, "pull", cmd_runs_pull, "copy a remote run's output files here (all, or PATHs)")
    p.add_argument("run")
    p.add_argument("paths", nargs="*", metavar="PATH", help="output files or folders, relative to its output dir")
    p = command(runs, "rm", cmd_runs_rm, "delete runs, their metrics and their files")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--force", action="store_true", help="cancel a running run first")
