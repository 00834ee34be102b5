"""`workbench doctor`: is everything a run needs in place, here or on an SSH host."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from workbench.cli.output import emit_json


def cmd_doctor(wb: Any, args: argparse.Namespace) -> int:
    checks = wb.doctor(args.machine)
    if args.json:
        emit_json(checks)
    else:
        marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        for c in checks:
            print(f"[{marks[c['status']]}] {c['check']:<17} {c['detail']}")
            if c["fix"]:
                print(f"       {'':<17} fix: {c['fix']}")
    essential = ("data dir", "database") if args.machine in (None, "local") else ("ssh", "workbench dir")
    return 1 if any(c["status"] == "fail" for c in checks if c["check"] in essential) else 0


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command(sub, "doctor", cmd_doctor, "check the engine, GPU runtime, NVML, data dir and disk (or an SSH host's)")
    p.add_argument("machine", nargs="?", help="an SSH machine to check: SSH, Docker, GPU runtime, GPUs, its "
                                              "Workbench dir and disk")
