"""`workbench ci watch|list|bisect|stop`: CI on commits (follow a branch, each commit a run with a verdict kept
in git notes; find the commit that broke a check). The detached follower's `_ci_follow` is in background.py."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any, Callable

from workbench.cli.output import columns, emit_json, say
from workbench.textsafe import printable


def _print(line: str) -> None:
    print(printable(line), flush=True)


def cmd_ci_watch(wb: Any, args: argparse.Namespace) -> int:
    options = dict(branch=args.branch, experiment=args.experiment, remote=args.remote, every_commit=args.every_commit,
                   fetch_every=args.fetch_every)
    wb.reconcile(wait=0)
    if args.detach:
        branch = wb.ci_detach(args.path, **options)
        if args.json:
            emit_json(branch.to_json())
        else:
            say(f"following {branch.branch} of {branch.project_path} in the background (pid {branch.pid}): each new "
                f"commit runs {branch.experiment}; `workbench ci list {branch.project_path}` shows the verdicts, "
                f"`workbench ci stop {branch.project_path}` ends it")
        return 0
    follower = wb.ci_watch(args.path, _print, **options)
    try:
        while follower.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    follower.stop()
    going = f"; run(s) {', '.join(follower.in_flight)} keep going" if follower.in_flight else ""
    _print(f"stopped following {follower.branch} ({len(follower.runs)} run(s) started{going})")
    return 0


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _values(commit: Any) -> str:
    parts = []
    for name, value in commit.metrics.items():
        text = f"{name}={value:.4g}"
        if name in commit.deltas:
            text += f" ({commit.deltas[name]:+.4g})"
        parts.append(text)
    return " ".join(parts)


def cmd_ci_list(wb: Any, args: argparse.Namespace) -> int:
    commits = wb.ci_list(args.path, branch=args.branch, experiment=args.experiment, remote=args.remote,
                         limit=args.limit)
    if args.json:
        emit_json([c.to_json() for c in commits])
        return 0
    rows = [("COMMIT", "WHEN", "VERDICT", "RUN", "METRICS (Δ previous)", "SUBJECT")]
    for c in commits:
        rows.append((c.short, _when(c.committed_at), c.verdict, c.run_id or "-", _values(c) or "-",
                     c.subject[:60]))
    for line in columns(rows):
        _print(line)
    return 0


def cmd_ci_bisect(wb: Any, args: argparse.Namespace) -> int:
    result = wb.ci_bisect(args.path, args.good, args.bad, (lambda line: None) if args.json else _print,
                          experiment=args.experiment, check=args.check, parallel=args.parallel)
    if args.json:
        emit_json(result.to_json())
        return 0 if result.first_bad else 1
    reused = sum(1 for step in result.steps if step.reused)
    _print(f"{result.runs} run(s) started in {result.rounds} round(s), {reused} verdict(s) reused")
    if result.first_bad:
        _print(f"first bad commit: {result.first_bad} {result.first_bad_subject}")
    else:
        skipped = ", ".join(s[:8] for s in result.unresolved[:-1])
        _print(f"could not narrow it to one commit: the first bad commit is one of "
               f"{', '.join(s[:8] for s in result.unresolved)} ({skipped} could not be judged: skipped)")
    return 0 if result.first_bad else 1


def cmd_ci_stop(wb: Any, args: argparse.Namespace) -> int:
    stopped = wb.ci_stop(args.path, args.branch)
    if args.json:
        emit_json([b.to_json() for b in stopped])
    else:
        for b in stopped:
            say(f"stopped following {b.branch} of {b.project_path}")
    return 0


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    ci = sub.add_parser("ci", help="CI on commits: follow a branch, list verdicts, bisect").add_subparsers(
        dest="ci_command", metavar="ACTION", required=True)
    p = command(ci, "watch", cmd_ci_watch, "run each new commit of a branch (its own tree) and record its verdict")
    p.add_argument("path", help="project folder inside a git repository")
    p.add_argument("--branch", help="branch to follow (default: the current one)")
    p.add_argument("-e", "--experiment", help="experiment to run (default: [watch] run, or the only one)")
    p.add_argument("--remote", help="also fetch this remote (a name, a path or an SSH URL) and follow its branch")
    p.add_argument("--fetch-every", type=float, default=60.0, metavar="SECONDS",
                   help="how often --remote is fetched (default 60)")
    p.add_argument("--every-commit", action="store_true",
                   help="run every commit of a burst, not only the newest")
    p.add_argument("--detach", action="store_true", help="follow from a background process (`ci stop` ends it)")

    p = command(ci, "list", cmd_ci_list, "a branch's commits, newest first, with verdicts and metric changes")
    p.add_argument("path")
    p.add_argument("--branch")
    p.add_argument("-e", "--experiment")
    p.add_argument("--remote", help="list the remote's branch as last fetched")
    p.add_argument("--limit", type=int, default=50, help="commits listed (default 50)")

    p = command(ci, "bisect", cmd_ci_bisect, "find the first commit between GOOD and BAD whose checks fail")
    p.add_argument("path")
    p.add_argument("good", metavar="GOOD")
    p.add_argument("bad", metavar="BAD")
    p.add_argument("-e", "--experiment")
    p.add_argument("--check", metavar="METRIC", help="judge by this check only (default: all the checks)")
    p.add_argument("--parallel", type=int, metavar="K",
                   help="commits evaluated at once (default: the free GPUs that fit the experiment, else 1)")

    p = command(ci, "stop", cmd_ci_stop, "stop following a branch (default: every branch of the project)")
    p.add_argument("path")
    p.add_argument("--branch")
