"""What the use cases share, behind the facade: the data dirs, the store (opened on first use), the backends
(`Executors`), where progress lines go, the GPU probe, and the few use cases one calls from another. It is
the `context.Services` every use-case module takes; the facade holds one (`Workbench._services`) and the
front ends never see it, so the store and the backends are reachable only from inside this package.

Its methods answer the use cases' own records (dicts), not the facade's typed answers: those are made at
the facade, once, for the front ends. Only the facade imports this module (no use case does: they take
the protocol), so it may import the use cases it hands work to without a circle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.dirs import Dirs
from workbench.execution.base import Executor
from workbench.machines.gpus import GpuProbe
from workbench.projects.spec import Experiment, ProjectSpec
from workbench.services import images, launch as launch_, machines, runs as runs_
from workbench.services.context import Progress
from workbench.services.executors import LOCAL, Executors
from workbench.store import Store, open_store


class Core:
    def __init__(self, dirs: Dirs, gpu_probe: GpuProbe, progress: Progress) -> None:
        self.dirs = dirs
        self.gpu_probe = gpu_probe
        self.progress = progress
        self._store: Store | None = None
        self.executors = Executors(self.dirs, lambda: self.store)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.dirs.db_path)
            self._store.ensure_machine(LOCAL, "local")
        return self._store

    def store_opened(self) -> Store | None:
        """The store if it was opened (closing never opens one)."""
        return self._store

    def docker_client(self) -> Any:
        return self.executors.docker_client()

    def executor(self, name: str) -> Executor:
        """The local executor of kind `name` (docker or process); runs use `executors.for_run(run)`."""
        return self.executors.get(LOCAL, name)

    # the use cases one calls from another (context.Services) ------------------------------------------------
    def follow_in_background(self, run_id: str) -> None:
        runs_.follow_in_background(self, run_id)

    def launch(self, path: str, experiment: str | None = None, overrides: list[str] | None = None, *,
               machine: str | None = None, executor: str | None = None, priority: int = 0) -> dict[str, Any]:
        return launch_.launch(self, path, experiment, overrides, machine=machine, executor=executor,
                              priority=priority)

    def cancel(self, ref: str) -> dict[str, Any]:
        return runs_.cancel(self, ref)

    def pull(self, ref: str, paths: list[str] | None = None) -> list[tuple[str, int]]:
        return runs_.pull(self, ref, paths)

    def local_machine(self) -> Any:
        return machines.local_machine(self)

    def list_machines(self) -> list[dict[str, Any]]:
        return machines.list_machines(self)

    # launch.py calls it through here, so a test can stand in for the image step of one Workbench
    def _image_for(self, spec: ProjectSpec, exp: Experiment, snapshot_dir: Path, snapshot_hash: str,
                   run_id: str | None = None, *, machine: str = LOCAL) -> str:
        return images.image_for(self, spec, exp, snapshot_dir, snapshot_hash, run_id, machine=machine)
