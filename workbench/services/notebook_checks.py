"""Before a notebook run starts: the notebook is one (else the launch is refused, nothing recorded), and what the
user should know about how its params arrive, said once per notebook content (a sweep of 100 trials says it once)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from workbench.projects.notebook import NotebookOutline, outline
from workbench.projects.spec import Experiment
from workbench.services.context import Services, warn


def check_notebook(root: Path, exp: Experiment) -> NotebookOutline | None:
    """The notebook's outline; SpecError when it is not a valid notebook."""
    if not exp.notebook:
        return None
    return outline(root / exp.notebook, shown_as=exp.notebook)


def notebook_warnings(wb: Services, run_id: str, root: Path, exp: Experiment, values: dict[str, Any]) -> None:
    found = check_notebook(root, exp)
    if found is None or not values:
        return
    digest = hashlib.sha256((root / (exp.notebook or "")).read_bytes()).hexdigest()[:12]
    said: list[str] = []
    if not found.has_parameters_cell:
        said.append(f"{exp.notebook} has no cell tagged \"parameters\": its params go in a new first cell (tag the "
                    "cell that sets their defaults `parameters` to have them injected after it, as papermill does)")
    elif found.declared is not None:
        undeclared = sorted(set(values) - found.declared)
        if undeclared:
            said.append(f"{exp.notebook}'s parameters cell does not set {', '.join(undeclared)}: injected all the same")
    for note in said:
        note = f"{note} (said once for this notebook, content {digest})"
        if not wb.store.warning_recorded(note):
            warn(wb, run_id, note)
