"""The architecture of docs/architecture.md, checked: the layer order, no circles among the services' modules
nor among the screens, the CLI and the app reaching runs, machines and projects through the services only
(import-linter, pyproject.toml); the front ends never reaching behind the facade at run time; SQL only in
workbench/store; nothing outside workbench/tui importing textual."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from helpers import REPO

WORKBENCH = REPO / "workbench"
FRONT_ENDS = ("cli", "tui")
# What the facade keeps to itself: the use cases' context (`_services`: the store, the executors), and a run's
# folder (the front ends ask the facade's methods instead: run, runs, run_log_tail, run_out_dir, ...).
BEHIND_THE_FACADE = ("store", "executors", "_services")
CALLS_BEHIND_THE_FACADE = ("executor", "docker_client")
# of the data dir the front ends name only the folder itself (the status bar, `--home`) and the config file they
# load themselves; runs, snapshots, models and the database are the facade's
DIRS_IN_FRONT = ("data", "config", "config_file")
SQL = re.compile(r"\bSELECT\b.*?\bFROM\b|\bINSERT\b.*?\bINTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b",
                 re.S)  # upper case: our SQL is written so, and lower case would match prose ("select a file from")


def modules(*under: str) -> list[Path]:
    return sorted(path for folder in under for path in (WORKBENCH / folder).rglob("*.py"))


def test_import_linter_contracts_hold():
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 8 kept, 0 broken" in done.stdout


def behind_the_facade(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a module reads `.store` or `.executors`, calls `.executor(...)` or `.docker_client(...)`, reads
    `.dirs` for anything but the data folder and the config file (a run's folder, the runs, the database), or
    hands `.dirs` on whole, on anything."""
    found = []
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in BEHIND_THE_FACADE:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if func.attr in CALLS_BEHIND_THE_FACADE:
                found.append((node.lineno, f".{func.attr}("))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "dirs":
            parent = parents.get(id(node))
            if not (isinstance(parent, ast.Attribute) and parent.attr in DIRS_IN_FRONT):
                found.append((node.lineno, f".dirs.{parent.attr}" if isinstance(parent, ast.Attribute) else ".dirs"))
    return sorted(found)


def test_the_front_ends_go_through_the_facade():
    offenders = [f"{path.relative_to(REPO)}:{line} {what}" for path in modules(*FRONT_ENDS)
                 for line, what in behind_the_facade(ast.parse(path.read_text()))]
    assert offenders == []


def test_the_facade_check_sees_each_way_behind_it():
    tree = ast.parse("wb.store.get_run(r)\nwb.executors.for_run(r)\nwb.executor('docker')\n"
                     "self.workbench.docker_client()\nwb.dirs.run_dir(r)\nd = wb.dirs\nwb.dirs.runs / r\n"
                     "wb.dirs.config_file\nwb.dirs.data\nwb.run(r)\nwb._services.launch(p)\n")
    assert [what for _, what in behind_the_facade(tree)] == [".store", ".executors", ".executor(",
                                                              ".docker_client(", ".dirs.run_dir", ".dirs",
                                                              ".dirs.runs", "._services"]


def test_the_facade_shows_no_plumbing():
    """The store and the backends are the use cases' (core.Core), kept private by the facade: none of its
    public names reaches them."""
    from workbench.services import Workbench

    public = {name for name in dir(Workbench) if not name.startswith("_")}
    assert not public & {"store", "executors", "executor", "docker_client", "gpu_probe"}, public


def sql_in(tree: ast.AST) -> list[tuple[int, str]]:
    return sorted((node.lineno, node.value[:60]) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value))


def test_sql_is_written_only_in_the_store():
    offenders = [f"{path.relative_to(REPO)}:{line} {text!r}" for path in modules(".")
                 if path.relative_to(WORKBENCH).parts[0] != "store"
                 for line, text in sql_in(ast.parse(path.read_text()))]
    assert offenders == []


def test_the_sql_check_sees_each_statement_and_passes_prose():
    tree = ast.parse('a = "SELECT 1 FROM runs WHERE id = ?"\nb = f"INSERT OR IGNORE INTO t (x) VALUES ({x})"\n'
                     'c = "UPDATE runs SET status = ?"\nd = "DELETE FROM leases"\n'
                     'e = "select a folder from the list"\nf = "INSERT OR IGNORE keeps the first"\n')
    assert [line for line, _ in sql_in(tree)] == [1, 2, 3, 4]


def test_nothing_outside_tui_imports_textual():
    offenders = []
    for path in modules("."):
        if "tui" in path.relative_to(WORKBENCH).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "textual" or n.startswith("textual.") for n in names):
                offenders.append(str(path))
    assert offenders == []


def test_no_shell_strings_anywhere():
    for path in modules("."):
        text = path.read_text()
        assert "shell=True" not in text and "os.system(" not in text, path
