"""`workbench notebook` (open a JupyterLab session, or attach to a running one) and `workbench sessions list|stop`."""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from workbench.cli.output import columns, emit_json, say
from workbench.formatting import duration, money, started
from workbench.textsafe import printable


def cmd_notebook(wb: Any, args: argparse.Namespace) -> int:
    if args.attach:
        if args.path or args.experiment or args.machine or args.gpus is not None or args.queue:
            say("workbench: error: --attach takes only --port (the session runs as it was opened)")
            return 2
        session = wb.attach_session(args.attach, port=args.port)
    elif not args.path:
        say("workbench: error: give the project folder, or --attach ID")
        return 2
    else:
        wb.reconcile(wait=0)
        session = wb.open_session(args.path, args.experiment, machine=args.machine, gpus=args.gpus, port=args.port,
                                  queue=args.queue)
    if session.status == "queued":
        if args.json:
            emit_json(session.to_json())
        else:
            print(session.id)
            say(f"session {session.id} starts when a machine can take it; then `workbench notebook --attach "
                f"{session.id}` prints its URL")
        return 0
    if args.json:
        emit_json(session.to_json())
        return 0
    print(session.url)
    gpus = f", {len(session.gpu_uuids)} GPU(s)" if session.gpu_uuids else ""
    say(f"session {session.id} on {session.machine}{gpus}: JupyterLab answers at the URL above; "
        f"`workbench sessions stop {session.id}` stops it and brings your files back")
    return 0


def cmd_sessions_list(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    found = wb.sessions()
    now = time.time()
    if args.json:
        emit_json([session.to_json(now) for session in found])
        return 0
    if not found:
        print("no sessions (open one with `workbench notebook PATH`)")
        return 0
    rows = [("ID", "STATUS", "PROJECT", "MACHINE", "GPUS", "STARTED", "DURATION", "COST", "URL")]
    for s in found:
        rows.append((s.id, s.status, printable(s.project), printable(s.machine), str(len(s.gpu_uuids or [])),
                     started(s), duration(s, now), money(s.cost_at(now)) if s.hourly_cost is not None else "-",
                     s.url or "-"))
    print("\n".join(columns(rows)))
    return 0


def cmd_sessions_stop(wb: Any, args: argparse.Namespace) -> int:
    session = wb.stop_session(args.session)
    if args.json:
        emit_json(session.to_json())
        return 0
    say(f"session {session.id} {session.status}; {session.brought_back}")
    return 0


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command(sub, "notebook", cmd_notebook, "open JupyterLab on a project in its experiment's image, on a machine "
                                               "with its GPUs reserved (a session)")
    p.add_argument("path", nargs="?", help="project folder (holds workbench.toml)")
    p.add_argument("-e", "--experiment", help="the experiment whose image, env and GPUs it uses")
    p.add_argument("--machine", help="local, an SSH machine's name, or auto (default: the experiment's, else local)")
    p.add_argument("--gpus", type=int, help="GPUs to reserve (default: the experiment's)")
    p.add_argument("--port", type=int, help="the local port to reach it on (default: a free one)")
    p.add_argument("--queue", action="store_true", help="wait in the queue when no machine can take it now")
    p.add_argument("--attach", metavar="ID", help="a running session: print its URL again (its tunnel restarted)")
    sessions = sub.add_parser("sessions", help="JupyterLab sessions").add_subparsers(
        dest="sessions_command", metavar="ACTION", required=True)
    command(sessions, "list", cmd_sessions_list, "running and recent sessions, newest first")
    p = command(sessions, "stop", cmd_sessions_stop, "stop a session and bring its changed files back")
    p.add_argument("session", help="session id or unique prefix")
