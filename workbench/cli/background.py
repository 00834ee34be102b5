"""The hidden commands the detached background processes run: the queue's dispatcher, a run's follower,
the deployment watcher, a session's forwarder and a followed branch's follower (started by the services,
never typed)."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_dispatch(wb: Any, args: argparse.Namespace) -> int:
    wb.dispatch()
    return 0


def cmd_follow(wb: Any, args: argparse.Namespace) -> int:
    wb.follow(args.run)
    return 0


def cmd_watch_deployments(wb: Any, args: argparse.Namespace) -> int:
    wb.watch_deployments()
    return 0


def cmd_tunnel(wb: Any, args: argparse.Namespace) -> int:
    wb.serve_tunnel(args.run)
    return 0


def cmd_ci_follow(wb: Any, args: argparse.Namespace) -> int:
    wb.ci_follow_detached(args.path, args.branch)
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("_dispatch")  # internal: the detached dispatcher of the queue
    p.set_defaults(func=cmd_dispatch)
    p = sub.add_parser("_follow")  # internal: the detached background follower of one run
    p.add_argument("run")
    p.set_defaults(func=cmd_follow)
    p = sub.add_parser("_watch_deployments")  # internal: the detached deployment watcher (health, traffic, canaries)
    p.set_defaults(func=cmd_watch_deployments)
    p = sub.add_parser("_tunnel")  # internal: the detached forwarder of a session on an SSH host
    p.add_argument("run")
    p.set_defaults(func=cmd_tunnel)
    p = sub.add_parser("_ci_follow")  # internal: the detached follower of one branch (`ci watch --detach`)
    p.add_argument("path")
    p.add_argument("branch")
    p.set_defaults(func=cmd_ci_follow)
