"""Headless commands over the same services as the TUI, one module per command group. `--json` output is
documented in docs/cli-json.md.

Exit codes: 0 success; 1 a user-caused or environmental error (one line on stderr) or a run that did not
succeed under --wait; 2 command-line syntax (argparse); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from workbench.cli import background, ci, deploy, doctor, gc, launch, machines, projects, queue, runs, sessions, sweeps
from workbench.cli.output import say
from workbench.errors import WorkbenchError
from workbench.formatting import EngineOutput
from workbench.textsafe import coloured_text, log_text


def cmd_tui(wb: Any, args: argparse.Namespace) -> int:
    from workbench.tui.app import run_app
    return run_app(wb)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Local-first ML experiment workstation.")
    parser.add_argument("--version", action="version", version=f"workbench {__import__('workbench').__version__}")
    parser.set_defaults(func=cmd_tui, json=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(subparsers: Any, name: str, func: Any, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        return p

    for group in (doctor, launch, sessions, queue, sweeps, ci, deploy, runs, gc, projects, machines):  # the order --help lists
        group.add_commands(sub, command)
    background.add_commands(sub)
    return parser


def _data_dir() -> Any:
    try:
        from workbench.dirs import resolve_dirs
        return resolve_dirs().data
    except Exception:  # noqa: BLE001
        return None


def _say_progress(message: str) -> None:
    """Workbench's progress lines. What the engine printed (a build's output) keeps its colours on a
    terminal and loses them elsewhere: never escape text such as `\x1b[91m`."""
    if not isinstance(message, EngineOutput):
        say(message)
        return
    print(coloured_text(message) if sys.stderr.isatty() else log_text(message), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    wb = None
    try:
        from workbench.services import Workbench

        wb = Workbench(progress=_say_progress)
        return args.func(wb, args)
    except WorkbenchError as exc:
        say(f"workbench: error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("workbench: interrupted (runs keep going; see `workbench runs list`)")
        return 130
    except BrokenPipeError:  # `workbench runs list | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback, unless asked for
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        from workbench.failures import explain

        message = explain(exc, wb.dirs.data if wb is not None else _data_dir())
        if message:
            say(f"workbench: error: {message}")
            return 1
        say(f"workbench: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            f"(set WORKBENCH_DEBUG=1 for the traceback)")
        return 1
    finally:
        if wb is not None:
            try:
                wb.close()
            except Exception:  # noqa: BLE001
                pass
