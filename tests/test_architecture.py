"""The layer order of docs/architecture.md (import-linter) and: nothing outside workbench/tui imports textual."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import REPO


def test_import_linter_contracts_hold():
    done = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken" in done.stdout


def test_nothing_outside_tui_imports_textual():
    offenders = []
    for path in (REPO / "workbench").rglob("*.py"):
        if "tui" in path.relative_to(REPO / "workbench").parts:
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
    for path in (REPO / "workbench").rglob("*.py"):
        text = path.read_text()
        assert "shell=True" not in text and "os.system(" not in text, path
