"""The CLI package: one module per command group, assembled by workbench/cli/__init__.py. Loading it (every
`workbench ...` start, `--help` included) must not load the services or what lies below them: commands reach
those through the facade, made only once the arguments parse."""

from __future__ import annotations

import subprocess
import sys

from workbench.cli import build_parser

BELOW_THE_FACADE = ("workbench.services", "workbench.store", "workbench.execution", "workbench.machines",
                    "workbench.projects", "workbench.registry", "workbench.serving", "textual")


def test_loading_the_cli_loads_nothing_below_the_facade():
    probe = ("import sys, workbench.cli; "
             f"print(sorted(m for m in sys.modules if m.startswith({BELOW_THE_FACADE!r})))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_every_group_registers_its_commands_in_the_order_help_lists_them():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # noqa: SLF001 - argparse's own
    assert list(commands) == ["doctor", "run", "notebook", "sessions", "queue", "sweep", "sweeps", "ci", "models", "deploy",
                              "deployments", "runs", "gc", "projects", "watch", "machines", "_dispatch", "_follow",
                              "_watch_deployments", "_tunnel", "_ci_follow"]
    ci = next(a for a in commands["ci"]._actions if a.dest == "ci_command").choices  # noqa: SLF001
    assert list(ci) == ["watch", "list", "bisect", "stop"]
    runs = next(a for a in commands["runs"]._actions if a.dest == "runs_command").choices  # noqa: SLF001
    assert list(runs) == ["list", "show", "logs", "notebook", "cancel", "rerun", "compare", "pull", "rm"]
    assert parser.parse_args(["runs", "show", "abc", "--json"]).func.__module__ == "workbench.cli.runs"
