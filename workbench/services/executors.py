"""The executors runs use, one per (machine, executor kind), created on first use and kept.

`local` is this workstation: its Docker engine (the one DOCKER_HOST / the docker context names) and its
processes. Any other name is a registered SSH machine: one persistent connection per host in this process,
which carries its Docker engine (`docker system dial-stdio` channels), SFTP for the run's files, and the
commands of the process executor there. An engine or host that stops answering is forgotten, so the next use
connects again."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from workbench.dirs import Dirs
from workbench.errors import EngineUnavailable, NotFound, WorkbenchError
from workbench.execution.base import Executor
from workbench.execution.hosts import LocalHost
from workbench.store import Store

if TYPE_CHECKING:
    from workbench.execution.hosts import SshHost
    from workbench.machines.ssh import Connection

LOCAL = "local"


class Executors:
    def __init__(self, dirs: Dirs, store: Callable[[], Store]) -> None:
        self._dirs = dirs
        self._store = store  # opened lazily by the facade: a getter, not the store
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
    def machine(self, name: str) -> str:
        """`name` when runs can run there (this workstation or a registered SSH machine); a clear error
        otherwise."""
        if name == LOCAL:
            return name
        found = self._store().get_machine(name)
        if found is None:
            raise NotFound(f"no machine {name!r}", hint="see `workbench machines list`, or add it with "
                                                        "`workbench machines add NAME --ssh USER@HOST`")
        return name

    def is_remote(self, machine: str) -> bool:
        return machine != LOCAL

    def connection(self, machine: str) -> "Connection":
        from workbench.machines.hostkeys import HostKeyStore
        from workbench.machines.ssh import Connection, target_from_dict

        with self._lock:
            found = self._connections.get(machine)
        if found is not None:
            return found
        record = self._store().get_machine(self.machine(machine))
        assert record is not None
        made = Connection(target_from_dict(record["config"]["target"]), HostKeyStore(self._dirs.known_hosts))
        with self._lock:
            return self._connections.setdefault(machine, made)

    def host(self, machine: str) -> LocalHost | "SshHost":
        """Where the machine's run dirs are: the data dir's runs/ here, the Workbench dir on a host."""
        if machine == LOCAL:
            return LocalHost(self._dirs.runs)
        from workbench.execution.hosts import SshHost

        with self._lock:
            found = self._hosts.get(machine)
        if found is not None:
            return found
        connection = self.connection(machine)
        record = self._store().get_machine(machine)
        config = (record or {}).get("config", {})
        store = self._store()
        made = SshHost(connection, config.get("dir"), known=config.get("host"),
                       remember=lambda learnt: store.update_machine_config(machine, host=learnt),
                       instance=store.instance)
        with self._lock:
            return self._hosts.setdefault(machine, made)

    def docker_client_for(self, machine: str) -> Any:
        """The Docker engine of `machine`: this workstation's, or the host's over its SSH connection
        (EngineUnavailable naming the host when none answers there)."""
        if machine == LOCAL:
            return self.docker_client()
        with self._lock:
            found = self._remote_docker.get(machine)
        if found is not None:
            return found
        from workbench.machines.docker_ssh import docker_client_over

        made = docker_client_over(self.connection(machine))
        with self._lock:
            return self._remote_docker.setdefault(machine, made)

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

    # executors ------------------------------------------------------------------------------------
    def is_slurm(self, machine: str) -> bool:
        if machine == LOCAL:
            return False
        found = self._store().get_machine(machine)
        return bool(found and found["kind"] == "slurm")

    def choose(self, machine: str, requested: str | None, progress: Callable[[str], None]) -> str:
        """The executor kind for a run on `machine`: as requested (checked now), else docker where an
        engine answers, else the process executor, said plainly. A Slurm machine takes Slurm jobs only."""
        if self.is_slurm(machine):
            if requested and requested != "slurm":
                raise WorkbenchError(f"{machine} is a Slurm cluster: runs there are Slurm jobs (--executor "
                                     f"{requested} is not available there)",
                                     hint="drop --executor; containers on Slurm (Apptainer/Pyxis) are a later step")
            return "slurm"
        if requested == "slurm":
            raise WorkbenchError(f"{machine} is not a Slurm cluster", hint="add one with `workbench machines add "
                                                                           "NAME --slurm LOGIN_HOST`")
        if requested:
            if requested == "docker":
                self.docker_client_for(machine)  # a clear error now if there is no engine
            return requested
        try:
            self.docker_client_for(machine)
            return "docker"
        except EngineUnavailable as exc:
            where = "" if machine == LOCAL else f" on {machine}"
            progress(f"{exc.message}: running with the process executor{where} instead (--executor process)")
            return "process"

    def get(self, machine: str, kind: str) -> Executor:
        key = (self.machine(machine), kind)
        with self._lock:
            made = self._made.get(key)
        if made is None:
            made = self._make(machine, kind)  # outside the lock: connecting may take a while
            with self._lock:
                made = self._made.setdefault(key, made)
        return made

    def for_run(self, run: dict[str, Any]) -> Executor:
        return self.get(run.get("machine") or LOCAL, run["executor"])

    def _make(self, machine: str, kind: str) -> Executor:
        if kind not in ("docker", "process", "slurm"):
            raise WorkbenchError(f"unknown executor {kind!r}", hint="use docker or process")
        if kind == "slurm":
            from workbench.execution.slurm_executor import SlurmExecutor, SlurmSettings
            record = self._store().get_machine(machine) or {}
            settings = SlurmSettings.from_config((record.get("config") or {}).get("slurm") or {})
            return SlurmExecutor(self.host(machine), self._store(), settings, self._store().instance)  # type: ignore[arg-type]
        if kind == "docker":
            from workbench.execution.docker_executor import DockerExecutor
            return DockerExecutor(self.docker_client_for(machine), self._store().instance, self.host(machine))
        if machine == LOCAL:
            from workbench.execution.process_executor import ProcessExecutor
            return ProcessExecutor(self._dirs.runs)
        from workbench.execution.remote_process_executor import RemoteProcessExecutor
        return RemoteProcessExecutor(self.host(machine))  # type: ignore[arg-type]

    def remote_machines(self) -> list[str]:
        with self._lock:
            return list(self._connections)

    def close(self) -> None:
        if self._docker is not None:
            self._docker.close()
        for machine in self.remote_machines():
            self.forget_machine(machine)
