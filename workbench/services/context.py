"""What the use-case modules need from the facade: its plumbing (dirs, store, executors, progress) and the few
facade methods one use case calls from another. The modules depend on this protocol, never on the facade's
class, so none of them imports `workbench.services` (or one another in a circle)."""

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
    def local_machine(self) -> Any: ...
    def list_machines(self) -> list[dict[str, Any]]: ...
    # launch.py calls it through the facade, so a test can stand in for the image step of one Workbench
    def _image_for(self, spec: ProjectSpec, exp: Experiment, snapshot_dir: Path, snapshot_hash: str,
                   run_id: str | None = None, *, machine: str = "local") -> str: ...


def start_detached(wb: Services, args: list[str], errors: Path) -> None:
    """`workbench ARGS` in a session of its own (it outlives this process: the dispatcher, a run's follower,
    the deployment watcher), on this data dir, its stderr appended to `errors`."""
    subprocess.Popen(
        [sys.executable, "-m", "workbench", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(errors, "ab"), start_new_session=True, close_fds=True,
        env={**os.environ, "WORKBENCH_HOME": str(wb.dirs.data)} if wb.dirs.data == wb.dirs.config else None)


def live_holder(store: Store, lease: str) -> str | None:
    """Who holds `lease`; a holder that was a process here and is gone (killed) has it freed first, so it is
    replaced now rather than when its lease lapses."""
    from workbench.execution.ingest import owner_gone

    holder = store.lease_holder(lease)
    if holder and owner_gone(holder):
        store.release_lease(lease, holder)  # only if still that dead owner's
        return None
    return holder


def warn(wb: Services, run_id: str, message: str) -> None:
    """Said to the user now and kept with the run."""
    wb.progress(f"warning: {message}")
    wb.store.add_event(run_id, "warning", message)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def recorded_image_ids(store: Store) -> set[str]:
    """Every image id a run of this data dir recorded."""
    return {r[0] for r in store.query("SELECT DISTINCT image_id FROM runs WHERE image_id IS NOT NULL")}
