"""`workbench projects ...` (registered project folders) and `workbench watch` (re-run an experiment of
one whenever its files change)."""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from workbench.cli.output import emit_json, say
from workbench.textsafe import printable


def cmd_projects_add(wb: Any, args: argparse.Namespace) -> int:
    spec = wb.add_project(args.path)
    if args.json:
        emit_json({"name": spec.name, "path": str(spec.root), "experiments": sorted(spec.experiments)})
    else:
        say(f"added project {spec.name} ({spec.root}): experiments {', '.join(spec.experiments)}")
    return 0


def cmd_projects_list(wb: Any, args: argparse.Namespace) -> int:
    projects = wb.projects()
    if args.json:
        emit_json([p.to_json() for p in projects])
        return 0
    if not projects:
        say("no projects yet: add one with `workbench projects add PATH`")
    for p in projects:
        state = p.error or ("experiments: " + ", ".join(p.experiments))
        cost = f"  ${p.cost:.2f} spent" if p.cost is not None else ""
        print(printable(f"{p.name:<20} {p.path}  {state}{cost}"))
    return 0


def cmd_projects_remove(wb: Any, args: argparse.Namespace) -> int:
    wb.remove_project(args.project)
    if not args.json:
        say(f"removed project {args.project} (its runs stay in the history)")
    else:
        emit_json({"removed": args.project})
    return 0


def cmd_watch(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    session = wb.watch(args.path, lambda line: print(printable(line), flush=True), polling=args.polling)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        session.stop()
        running = f"; run {session.current} keeps going" if session.current else ""
        print(f"stopped watching ({len(session.runs)} run(s) recorded{running})", flush=True)
        return 0


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    projects = sub.add_parser("projects", help="registered project folders").add_subparsers(
        dest="projects_command", metavar="ACTION", required=True)
    command(projects, "list", cmd_projects_list, "list registered projects")
    p = command(projects, "add", cmd_projects_add, "register a project folder")
    p.add_argument("path")
    p = command(projects, "remove", cmd_projects_remove, "unregister a project (its runs stay)")
    p.add_argument("project", help="name or path")

    p = command(sub, "watch", cmd_watch, "re-run an experiment whenever the project's files change", json_flag=False)
    p.add_argument("path", help="project folder (its workbench.toml has a [watch] table)")
    p.add_argument("--polling", action="store_true", help="poll instead of inotify (network file systems)")
