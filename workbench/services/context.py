"""What the use-case modules need: the plumbing (dirs, store, executors, progress, the GPU probe) and the few
use cases one calls from another. `core.Core` provides it, and the facade keeps its `Core` private; the
modules depend on this protocol, never on either class, so none of them imports `workbench.services` or
`core` (or one another in a circle)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Protocol

from workbench.dirs import Dirs
from workbench.machines.gpus import GpuProbe
from workbench.projects.spec import Experiment, ProjectSpec
from workbench.services.executors import Executors
from workbench.store import Store

Progress = Callable[[str], None]


class Services(Protocol):
    dirs: Dirs
    gpu_probe: GpuProbe
    progress: Progress
    executors: Executors

    @property
    def store(self) -> Store: ...
    def follow_in_background(self, run_id: str) -> None: ...
    def launch(self, path: str, experiment: str | None = None, overrides: list[str] | None = None, *,
               machine: str = "local", executor: str | None = None) -> dict[str, Any]: ...
    def cancel(self, ref: str) -> dict[str, Any]: ...
    def pull(self, ref: str, paths: list[str] | None = None) -> list[tuple[str, int]]: ...  # a remote run's output files, fetched
    def local_machine(self) -> Any: ...
    def list_machines(self) -> list[dict[str, Any]]: ...
    # launch.py calls it through here, so a test can stand in for the image step of one Workbench
    def _image_for(self, spec: ProjectSpec, exp: Experiment, snapshot_dir: Path, snapshot_hash: str,
                   run_id: str | None = None, *, machine: str = "local") -> str: ...


def start_detached(wb: Services, args: list[str], errors: Path) -> None:
    """`workbench ARGS` in a session of its own (it outlives this process: the dispatcher, a run's follower,
    the deployment watcher), on this data dir, its stderr appended to `errors`."""
    subprocess.Popen(
        [sys.executable, "-m", "workbench", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(errors, "ab"), start_new_session=True, close_fds=True,
        env={**os.environ, "WORKBENCH_HOME": str(wb.dirs.data)} if wb.dirs.data == wb.dirs.config else None)


def warn(wb: Services, run_id: str, message: str) -> None:
    """Said to the user now and kept with the run."""
    wb.progress(f"warning: {message}")
    wb.store.add_event(run_id, "warning", message)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__

