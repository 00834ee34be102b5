"""The executor interface (DESIGN.md): the seam for local Docker, SSH hosts, and later a cluster backend.

Nothing above this package assumes a run directory is on the local file system: logs and metrics are read
through the executor from opaque offsets, artifacts are fetched into a destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol



@dataclass
class Launch:
    """Everything an executor needs to start one run."""
    run_id: str
    project: str
    argv: list[str]
    env: dict[str, str]                 # complete environment, including WORKBENCH_* and WB_PARAM_*
    snapshot_dir: Path                  # the project snapshot (working dir, read-only)
    run_dir: Path                       # runs/<id>/ on the machine where the run executes
    image: str | None = None            # docker: image reference or id
    gpu_ids: list[str] = field(default_factory=list)  # device ids (uuids) to pin
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)  # (host, container, read_only)
    shm_size: str | None = None
    memory: str | None = None
    user: str | None = None             # "uid:gid" or a name


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


class Executor(Protocol):
    name: str

    def submit(self, launch: Launch) -> dict[str, Any]: ...
    def status(self, handle: dict[str, Any]) -> RunState: ...
    def read_logs(self, handle: dict[str, Any], offset: str, follow: bool) -> Iterator[Chunk]:
        """Log records from `offset` as lines `<RFC3339 time> <out|err> <text>`; with `follow`, until the run ends."""
    def read_metrics(self, handle: dict[str, Any], offset: str, limit: int, final: bool) -> Chunk: ...
    def fetch_artifacts(self, handle: dict[str, Any], dest: Path) -> Path:
        """Makes the run's output dir available locally (a no-op where it already is); returns its path."""
    def cancel(self, handle: dict[str, Any]) -> None: ...
    def list(self, labels: dict[str, str]) -> list[dict[str, Any]]: ...
    def cleanup(self, handle: dict[str, Any]) -> None: ...


def container_paths(run_dir: Path) -> dict[str, Path]:
    out = run_dir / "out"
    return {"out": out, "metrics": out / "metrics.jsonl"}


def read_file_from(path: Path, offset: str, limit: int, eof: bool) -> Chunk:
    """Whole lines of a local file from a byte offset (a line still being written waits for its newline)."""
    start = int(offset or 0)
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(limit)
    except FileNotFoundError:
        return Chunk(b"", str(start), eof)
    more = len(data) >= limit
    if eof and not more:
        cut = len(data)  # the run has ended: a last line without its newline is still a line
    else:
        cut = data.rfind(b"\n") + 1
        if cut == 0 and more:
            cut = len(data)  # one line longer than the limit: take it in pieces rather than stall
    data = data[:cut]
    return Chunk(data, str(start + len(data)), eof and not more)
