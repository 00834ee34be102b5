"""The executors runs use, one per (machine, executor kind), created on first use and kept. Only `local` runs
experiments in this version: its Docker engine (the one DOCKER_HOST / the docker context names) and its
processes. The engine connection lives here too: connected once, forgotten when it stops answering."""

from __future__ import annotations

import threading
from typing import Any, Callable

from workbench.dirs import Dirs
from workbench.errors import EngineUnavailable, WorkbenchError
from workbench.execution.base import Executor
from workbench.store import Store

LOCAL = "local"


class Executors:
    def __init__(self, dirs: Dirs, store: Callable[[], Store]) -> None:
        self._dirs = dirs
        self._store = store  # opened lazily by the facade: a getter, not the store
        self._docker: Any = None
        self._docker_error: EngineUnavailable | None = None
        self._made: dict[tuple[str, str], Executor] = {}
        self._lock = threading.Lock()

    def docker_client(self) -> Any:
        if self._docker is None and self._docker_error is None:
            from workbench.execution.engine import connect
            try:
                self._docker = connect()
            except EngineUnavailable as exc:
                self._docker_error = exc
        if self._docker_error is not None:
            raise self._docker_error
        return self._docker

    def forget_engine(self) -> None:
        """The next use connects again (the engine restarted, or was down when we last tried)."""
        docker, self._docker, self._docker_error = self._docker, None, None
        with self._lock:
            self._made = {key: made for key, made in self._made.items() if key[1] != "docker"}
        if docker is not None:
            try:
                docker.close()
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    def machine(name: str) -> str:
        """`name` when runs can run there; a clear error otherwise."""
        if name != LOCAL:
            raise WorkbenchError(f"no machine {name!r} is available to run on",
                                 hint="only `local` runs experiments in this version")
        return name

    def get(self, machine: str, kind: str) -> Executor:
        key = (self.machine(machine), kind)
        with self._lock:
            made = self._made.get(key)
        if made is None:
            made = self._make(kind)  # outside the lock: connecting to an engine may take a while
            with self._lock:
                made = self._made.setdefault(key, made)
        return made

    def for_run(self, run: dict[str, Any]) -> Executor:
        return self.get(run.get("machine") or LOCAL, run["executor"])

    def _make(self, kind: str) -> Executor:
        if kind == "docker":
            from workbench.execution.docker_executor import DockerExecutor
            return DockerExecutor(self.docker_client(), self._store().instance)
        if kind == "process":
            from workbench.execution.process_executor import ProcessExecutor
            return ProcessExecutor(self._dirs.runs)
        raise WorkbenchError(f"unknown executor {kind!r}", hint="use docker or process")

    def close(self) -> None:
        if self._docker is not None:
            self._docker.close()
