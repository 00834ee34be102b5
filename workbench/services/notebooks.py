"""A notebook run's executed notebook (the notebook with its outputs) on this workstation: where it is,
or why it is not there yet."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from workbench.errors import WorkbenchError
from workbench.services.context import Services
from workbench.services.executors import LOCAL
from workbench.store.runs import ACTIVE


def executed_notebook(wb: Services, ref: str) -> Path:
    """`<data dir>/runs/<id>/out/<notebook file name>`: a local run writes it there as it goes, a remote
    run's copy comes back when it ends (it is a declared artifact)."""
    run = wb.store.get_run(ref)
    run_id, notebook = run["id"], (run.get("spec") or {}).get("notebook")
    if not notebook:
        raise WorkbenchError(f"run {run_id} ran a command, not a notebook")
    path = wb.dirs.run_dir(run_id) / "out" / PurePosixPath(notebook).name
    if path.is_file():
        return path
    if run["status"] not in ACTIVE:
        raise WorkbenchError(f"run {run_id} left no executed notebook", hint=f"its log: `workbench runs logs {run_id}`")
    if run["status"] == "queued":
        raise WorkbenchError(f"run {run_id} is queued: its notebook has not started yet")
    if run["machine"] != LOCAL:
        raise WorkbenchError(f"run {run_id} runs on {run['machine']}: its executed notebook comes back when it ends")
    raise WorkbenchError(f"run {run_id} has not finished its first cell yet")
