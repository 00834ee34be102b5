"""The backends runs use, one per (machine, executor kind), created on first use and kept: each built from its
declaration (execution/backends) as `Backend(machine, host, settings)`, the machine resolved once by name.

`local` is this workstation: its Docker engine (the one DOCKER_HOST / the docker context names) and its
processes. Any other name is a registered SSH machine or Slurm cluster: one persistent connection per host in
this process, which carries its Docker engine (`docker system dial-stdio` channels), SFTP for the run's files,
and the commands of the process and Slurm backends there. An engine or host that stops answering is
forgotten, so the next use connects again."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from workbench.dirs import Dirs
from workbench.errors import EngineUnavailable, NotFound, WorkbenchError
from workbench.execution.backends import BACKENDS, Backend
from workbench.execution.base import BackendSettings, Executor, Machine, SubmitsMany
from workbench.execution.hosts import LocalHost
from workbench.services.run_notes import StoreRunNotes
from workbench.store import Store

if TYPE_CHECKING:
    from workbench.execution.hosts import SshHost
    from workbench.machines.ssh import Connection

LOCAL = "local"


class Executors:
    def __init__(self, dirs: Dirs, store: Callable[[], Store]) -> None:
        self._dirs = dirs
        self._store = store  # opened lazily by core.Core: a getter, not the store
        self._docker: Any = None
        self._docker_error: EngineUnavailable | None = None
        self._made: dict[tuple[str, str], Executor] = {}
        self._connections: dict[str, "Connection"] = {}
        self._hosts: dict[str, "SshHost"] = {}
        self._remote_docker: dict[str, Any] = {}
        self._lock = threading.Lock()

    # the workstation's engine -----------------------------------------------------------------------
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

    def local_docker_or_none(self) -> Any:
        try:
            return self.docker_client()
        except EngineUnavailable:
            return None

    def forget_engine(self) -> None:
        """The next use connects again (the engine restarted, or was down when we last tried)."""
        docker, self._docker, self._docker_error = self._docker, None, None
        with self._lock:
            self._made = {key: made for key, made in self._made.items() if key != (LOCAL, "docker")}
        if docker is not None:
            try:
                docker.close()
            except Exception:  # noqa: BLE001
                pass

    # machines -------------------------------------------------------------------------------------
    def resolve(self, machine: str | Machine) -> Machine:
        """The machine of that name (this workstation or a registered SSH host or Slurm cluster), looked up
        once; a clear error otherwise."""
        if isinstance(machine, Machine):
            return machine
        if machine == LOCAL:
            return Machine(LOCAL, "local")
        found = self._store().get_machine(machine)
        if found is None:
            raise NotFound(f"no machine {machine!r}", hint="see `workbench machines list`, or add it with "
                                                           "`workbench machines add NAME --ssh USER@HOST`")
        return Machine(found["name"], found["kind"], found.get("config") or {})

    def machine(self, name: str) -> str:
        """`name` when runs can run there; a clear error otherwise."""
        return self.resolve(name).name

    def is_remote(self, machine: str | Machine) -> bool:
        return (machine.name if isinstance(machine, Machine) else machine) != LOCAL

    def connection(self, machine: str | Machine) -> "Connection":
        from workbench.machines.hostkeys import HostKeyStore
        from workbench.machines.ssh import Connection, target_from_dict

        name = machine.name if isinstance(machine, Machine) else machine
        with self._lock:
            found = self._connections.get(name)
        if found is not None:
            return found
        resolved = self.resolve(machine)
        made = Connection(target_from_dict(resolved.config["target"]), HostKeyStore(self._dirs.known_hosts))
        with self._lock:
            return self._connections.setdefault(name, made)

    def host(self, machine: str | Machine) -> LocalHost | "SshHost":
        """Where the machine's run dirs are: the data dir's runs/ here, the Workbench dir on a host."""
        if not self.is_remote(machine):
            return LocalHost(self._dirs.runs)
        from workbench.execution.hosts import SshHost

        name = machine.name if isinstance(machine, Machine) else machine
        with self._lock:
            found = self._hosts.get(name)
        if found is not None:
            return found
        resolved = self.resolve(machine)
        connection = self.connection(resolved)
        store = self._store()
        made = SshHost(connection, resolved.config.get("dir"), known=resolved.config.get("host"),
                       remember=lambda learnt: store.update_machine_config(name, host=learnt),
                       instance=store.instance)
        with self._lock:
            return self._hosts.setdefault(name, made)

    def docker_client_for(self, machine: str | Machine) -> Any:
        """The Docker engine of `machine`: this workstation's, or the host's over its SSH connection
        (EngineUnavailable naming the host when none answers there)."""
        if not self.is_remote(machine):
            return self.docker_client()
        name = machine.name if isinstance(machine, Machine) else machine
        with self._lock:
            found = self._remote_docker.get(name)
        if found is not None:
            return found
        from workbench.machines.docker_ssh import docker_client_over

        made = docker_client_over(self.connection(machine))
        with self._lock:
            return self._remote_docker.setdefault(name, made)

    def forget_machine(self, machine: str) -> None:
        """Drops what this process holds for a host (its connection went away): the next use reconnects."""
        if machine == LOCAL:
            self.forget_engine()
            return
        with self._lock:
            self._made = {key: made for key, made in self._made.items() if key[0] != machine}
            client = self._remote_docker.pop(machine, None)
            host = self._hosts.pop(machine, None)
            connection = self._connections.pop(machine, None)
        for closing in (connection, host, client):  # the transport first: nothing then waits on a dead socket
            if closing is not None:
                try:
                    closing.close()
                except Exception:  # noqa: BLE001
                    pass

    # backends -------------------------------------------------------------------------------------
    def declared(self, kind: str) -> Backend:
        """The declaration of the backend of that executor kind (what it needs and does)."""
        found = BACKENDS.get(kind)
        if found is None:
            raise WorkbenchError(f"unknown executor {kind!r}", hint="use docker or process")
        return found

    def choose(self, machine: str | Machine, requested: str | None, progress: Callable[[str], None]) -> str:
        """The executor kind for a run on `machine`: as requested (checked now), else the first backend
        declared for its kind that can run there now (docker where an engine answers, else the process
        executor, said plainly). A Slurm cluster takes Slurm jobs only."""
        resolved = self.resolve(machine)
        fits = [b for b in BACKENDS.values() if resolved.kind in b.machine_kinds]
        wanted = BACKENDS.get(requested or "")
        if requested and (wanted is None and len(fits) == 1 or wanted is not None and wanted not in fits):
            raise _not_available(resolved, requested)
        if wanted is not None:
            if wanted.runs_in_image:
                self.docker_client_for(resolved)  # a clear error now if there is no engine
            return wanted.kind
        if requested:
            return requested  # not a backend: get() says so
        for backend, fallback in zip(fits, [*fits[1:], None]):
            if not backend.runs_in_image or fallback is None:
                return backend.kind
            try:
                self.docker_client_for(resolved)
                return backend.kind
            except EngineUnavailable as exc:
                where = "" if not resolved.remote else f" on {resolved.name}"
                progress(f"{exc.message}: running with the {fallback.kind} executor{where} instead "
                         f"(--executor {fallback.kind})")
        raise WorkbenchError(f"{resolved.name}: no executor runs on a {resolved.kind} machine")

    def submits_many_on(self, machine: str | Machine) -> bool:
        """A backend that runs on the machine submits a group of runs as one (a scheduler's job array)."""
        kind = self.resolve(machine).kind
        return any(issubclass(cls, SubmitsMany) for backend in BACKENDS.values()
                   if (cls := backend.executor_class(kind)) is not None)

    def get(self, machine: str | Machine, kind: str) -> Executor:
        """The backend of `kind` on `machine`, made on first use and kept."""
        resolved = self.resolve(machine)
        key = (resolved.name, kind)
        with self._lock:
            made = self._made.get(key)
        if made is None:
            made = self._make(resolved, kind)  # outside the lock: connecting may take a while
            with self._lock:
                made = self._made.setdefault(key, made)
        return made

    def for_run(self, run: dict[str, Any]) -> Executor:
        return self.get(run.get("machine") or LOCAL, run["executor"])

    def _make(self, machine: Machine, kind: str) -> Executor:
        backend = self.declared(kind)
        cls = backend.executor_class(machine.kind)
        if cls is None:
            raise _not_available(machine, kind)
        store = self._store()
        settings = BackendSettings(instance=store.instance, docker_client=lambda: self.docker_client_for(machine),
                                   notes=StoreRunNotes(store))
        return cls(machine, self.host(machine), settings)

    def remote_machines(self) -> list[str]:
        with self._lock:
            return list(self._connections)

    def close(self) -> None:
        if self._docker is not None:
            self._docker.close()
        for machine in self.remote_machines():
            self.forget_machine(machine)


def _not_available(machine: Machine, kind: str) -> WorkbenchError:
    if machine.kind == "slurm":
        return WorkbenchError(f"{machine.name} is a Slurm cluster: runs there are Slurm jobs (--executor {kind} is "
                              "not available there)",
                              hint="drop --executor; containers on Slurm (Apptainer/Pyxis) are a later step")
    return WorkbenchError(f"{machine.name} is not a Slurm cluster", hint="add one with `workbench machines add "
                                                                      "NAME --slurm LOGIN_HOST`")
