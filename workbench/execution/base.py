"""The backend interface (docs/architecture.md): what services give a backend (Launch, Machine, BackendSettings),
what they get back (Handle, RunState, Chunk), the abilities every backend has (Executor) and the optional ones
a backend declares by having them (the capability protocols, asked with isinstance); and RunNotes, through
which a backend that watches a scheduler reports what it sees (services record it: no backend writes runs).

Nothing above this package assumes a run directory is on the local file system: logs and metrics are read
through the executor from opaque offsets, artifacts are fetched into a destination.
"""

from __future__ import annotations

import posixpath
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterator, Literal, Protocol, runtime_checkable

from workbench.execution.loglines import char_boundary
from workbench.textsafe import log_text


@dataclass
class Launch:
    """Everything an executor needs to start one run."""
    run_id: str
    project: str
    argv: list[str]
    env: dict[str, str]                 # complete environment, including WORKBENCH_* and WB_PARAM_*
    snapshot_dir: str                   # the project snapshot (working dir, read-only), on the run's machine
    run_dir: str                        # runs/<id>/ on the run's machine (the executor's host chose it)
    image: str | None = None            # docker: image reference or id
    gpu_ids: list[str] = field(default_factory=list)  # device ids (uuids) to pin
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)  # (host, container, read_only)
    shm_size: str | None = None
    memory: str | None = None
    cpus: int | None = None             # CPUs it needs (a container's --cpus, a Slurm job's --cpus-per-task)
    user: str | None = None             # "uid:gid" or a name
    gpus: int = 0                       # how many GPUs, for a scheduler that picks them itself (Slurm)
    setup: str | None = None            # the experiment's shell line before its command (Slurm jobs)
    runtime_dir: str | None = None      # workbench/runtime/ on the run's machine: first on the run's PYTHONPATH
    # (host ip, container port, host port or 0 for one the engine picks): a port published (a lab session's)
    publish: tuple[str, int, int] | None = None
    writable_workdir: bool = False      # the working dir is the run's own copy (a session's), mounted read-write


@dataclass
class RunState:
    state: str                          # "running" | "exited" | "missing"
    exit_code: int | None = None
    reason: str | None = None           # e.g. "out of memory", "killed by signal 9 (SIGKILL)"
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class Chunk:
    """Bytes read from a source from an offset, cut at a line end, and the offset after them."""
    data: bytes
    offset: str
    eof: bool = False                   # the source will never grow again (the run has ended)
    rewritten_at: int | None = None     # the source was truncated or rewritten where it had been read to:
                                        # `data` is from its start again
    refused: str | None = None          # why the source was not read at all (e.g. it is a symbolic link)


@dataclass(frozen=True)
class Handle:
    """What a backend needs to find a run it started again (in this process or another): kept with the run
    as a JSON record (`runs.handle`), so a field is never renamed, and one a backend does not use is None."""
    run_dir: str                        # the run's dir on its machine
    machine: str
    container: str | None = None        # docker
    job: str | None = None              # slurm: the job id (`<array id>_<task>` for an array task)
    pid: int | None = None              # process: the experiment's pid, leader of its process group
    proc_start: str | None = None       # ... and its /proc start time (a recycled pid has another)
    shim: int | None = None             # process: the supervisor's pid
    shim_start: str | None = None
    started_at: float | None = None
    port: int | None = None             # docker: the host port its published port is bound to (a session's)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Handle":
        """The handle a run record keeps (keys this version does not know are left out: an older or newer
        database may hold them; one from before remote machines names none, and was this workstation's)."""
        known = {f.name for f in fields(cls)}
        return cls(**{"machine": "local", **{key: value for key, value in record.items() if key in known}})

    def to_record(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


MachineKind = Literal["local", "ssh", "slurm"]


@dataclass(frozen=True)
class Machine:
    """Where runs run, resolved once from its name: this workstation, a registered SSH host or a Slurm
    cluster's login node (`config` is its registered configuration: target, dir, slurm settings)."""
    name: str
    kind: MachineKind
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def remote(self) -> bool:
        return self.kind != "local"


class RunNotes(Protocol):
    """What a backend that watches a scheduler (Slurm) says about runs while it answers for them, and the
    scheduler's answer it shares with other processes: implemented by services on the store (a backend writes run records only through it, never to the store
    itself)."""

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run's record (None when there is none: a job of another Workbench, a run deleted since)."""
    def active_jobs(self, machine: str) -> dict[str, str]:
        """job id -> run id, for the machine's queued and running runs."""
    def event(self, run_id: str, kind: str, message: str) -> None: ...
    def events(self, run_id: str, kind: str) -> list[dict[str, Any]]:
        """The run's events of `kind` ({"ts", "kind", "message"}), oldest first."""
    def set_status_reason(self, run_id: str, reason: str | None) -> None: ...
    def set_gpus(self, run_id: str, gpus: list[str]) -> None:
        """The GPUs the scheduler gave the run (recorded with it, as if placed)."""
    def set_cancel_requested(self, run_id: str) -> None:
        """The run was cancelled outside Workbench: it ends cancelled, not failed."""
    def last_poll(self, machine: str) -> tuple[float, dict[str, dict[str, str]]] | None:
        """(when, jobs) of the machine's last scheduler poll, shared by every Workbench process."""
    def save_poll(self, machine: str, jobs: dict[str, dict[str, str]], polled_at: float) -> None: ...
    def take_poll_lease(self, machine: str, ttl: float) -> str | None:
        """The owner name of the machine's poll lease, now held, or None while another live process holds it."""
    def release_poll_lease(self, machine: str, owner: str) -> None: ...


@dataclass(frozen=True)
class BackendSettings:
    """What differs between backends beyond their machine and host (the host holds the runs root; a Slurm
    cluster's settings are in its machine's config): this Workbench's instance id (container labels, Slurm
    comments), how to reach the machine's Docker engine, and where a backend reports what it sees."""
    instance: str = ""
    docker_client: Callable[[], Any] | None = None
    notes: RunNotes | None = None


class Executor(Protocol):
    """Every ability services call on every backend; `BACKENDS[kind].executor_class(machine.kind)(machine, host,
    settings)` builds one (services/executors.py)."""
    name: str                           # its kind, as runs record it (`runs.executor`)
    machine: Machine
    host: Any                           # where the run's files are: hosts.LocalHost or hosts.SshHost (hosts.py
                                        # reads files into this module's Chunks, so it is not imported here)

    def submit(self, launch: Launch) -> Handle: ...
    def status(self, handle: Handle) -> RunState: ...
    def read_logs(self, handle: Handle, offset: str, follow: bool) -> Iterator[Chunk]:
        """Log records from `offset` as lines `<RFC3339 time> <out|err> <text>`; with `follow`, until the run ends.
        Only whole lines (a line still being written waits for its newline or the run's end, loglines.py); a
        chunk's offset is before any such line, so a read from it stores every line once."""
    def read_metrics(self, handle: Handle, offset: str, limit: int, final: bool) -> Chunk: ...
    def progress(self, handle: Handle, stop: threading.Event) -> Iterator[str]:
        """The line the run is redrawing now, each time it changes (text after the last newline, as a
        terminal shows it; "" once it is complete), until the run ends or `stop` is set."""
    def cancel(self, handle: Handle) -> None: ...
    def list(self, labels: dict[str, str]) -> list[dict[str, Any]]: ...
    def cleanup(self, handle: Handle) -> None: ...


# optional abilities, declared by the backends that have them and asked with isinstance ----------------------
@runtime_checkable
class Adopts(Protocol):
    def adopt(self, run_id: str, run_dir: str) -> Handle | None:
        """The handle of a run whose launcher died before recording it, found from its run dir (or labels, or
        the scheduler); None when it never started."""


@runtime_checkable
class SubmitsMany(Protocol):
    def submit_many(self, launches: list[Launch], max_parallel: int, group: str) -> list[Handle]:
        """Runs of one group (a sweep) started together, at most `max_parallel` at a time (the scheduler keeps
        to it); handles in the launches' order."""
    def adopt_from_run_dir(self, run_id: str, run_dir: str) -> Handle | None:
        """`adopt` for a run of such a group, from its run dir only (asking the scheduler per run finds none)."""


@runtime_checkable
class CancelsMany(Protocol):
    def cancel_many(self, handles: list[Handle]) -> None: ...


@runtime_checkable
class HeldWhilePending(Protocol):
    def held(self, handle: Handle) -> bool:
        """The scheduler still holds the run: it has written nothing yet, and needs no follower."""


@runtime_checkable
class RunsInImage(Protocol):
    """A backend whose runs are containers on the machine's engine: `list` finds them by label, and those no
    active run owns are removed."""
    def remove_orphans(self, containers: list[dict[str, Any]], active: set[str]) -> int: ...


METRICS_FILE = "metrics.jsonl"


def signal_reason(number: int) -> str:
    import signal

    try:
        return f"killed by signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"killed by signal {number}"


def exited(record: dict[str, Any], started_at: float | None) -> RunState:
    """The state an exit record of a process run says (`exit_code`, `signal`, `finished_at`)."""
    reason = signal_reason(record["signal"]) if record.get("signal") else None
    return RunState("exited", exit_code=record.get("exit_code"), reason=reason, started_at=started_at,
                    finished_at=record.get("finished_at"))


def out_dir(run_dir: str) -> str:
    """The run's output dir on its machine (WORKBENCH_OUTPUT points there)."""
    return posixpath.join(run_dir, "out")


def inside_out(rel: str) -> bool:
    """An output path, relative to the run's out/, that stays inside it (never absolute, never through
    `..`): only such a path is ever joined to a dir here."""
    return bool(rel) and not rel.startswith("/") and posixpath.normpath(rel) == rel and ".." not in rel.split("/")


def metrics_path(run_dir: str) -> str:
    return posixpath.join(run_dir, "out", METRICS_FILE)


def redrawn_tail(data: bytes) -> str:
    """What a terminal shows of output after its last newline: the last redraw of a `\r` progress bar (a
    character whose last bytes are not there yet is left out, not shown as U+FFFD)."""
    tail = data.rsplit(b"\n", 1)[-1]
    return log_text(tail[:char_boundary(tail)].decode("utf-8", errors="replace")).strip()  # log_text keeps the last \r
