"""The executor interface (docs/architecture.md): the seam for local Docker, SSH hosts, and later a cluster backend.

Nothing above this package assumes a run directory is on the local file system: logs and metrics are read
through the executor from opaque offsets, artifacts are fetched into a destination.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Protocol

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


class Executor(Protocol):
    name: str
    host: Any                           # hosts.LocalHost or hosts.SshHost: where the run's files are

    def submit(self, launch: Launch) -> dict[str, Any]: ...
    def status(self, handle: dict[str, Any]) -> RunState: ...
    def read_logs(self, handle: dict[str, Any], offset: str, follow: bool) -> Iterator[Chunk]:
        """Log records from `offset` as lines `<RFC3339 time> <out|err> <text>`; with `follow`, until the run ends.
        Only whole lines (a line still being written waits for its newline or the run's end, loglines.py); a
        chunk's offset is before any such line, so a read from it stores every line once."""
    def read_metrics(self, handle: dict[str, Any], offset: str, limit: int, final: bool) -> Chunk: ...
    def progress(self, handle: dict[str, Any], stop: threading.Event) -> Iterator[str]:
        """The line the run is redrawing now, each time it changes (text after the last newline, as a
        terminal shows it; "" once it is complete), until the run ends or `stop` is set."""
    def cancel(self, handle: dict[str, Any]) -> None: ...
    def list(self, labels: dict[str, str]) -> list[dict[str, Any]]: ...
    def cleanup(self, handle: dict[str, Any]) -> None: ...


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


MAX_LINE = 64 << 20                     # a metric line up to this long is one line, read whole
SKIPPED_LINE = b"<metric line over 64 MiB, skipped>\n"  # not JSON: the parser counts it as one bad line
_TAIL = 64                              # bytes before an offset whose digest the offset keeps


def read_file_from(path: Path, offset: str, limit: int, eof: bool) -> Chunk:
    """Whole lines of a local file from an offset (a line still being written waits for its newline).

    The offset is `<byte>:<digest of the up to 64 bytes before it>` (a bare `<byte>` is accepted): a file
    that is shorter, or whose bytes there differ, was truncated or rewritten and is read again from its
    start (`rewritten_at`). A line longer than `limit` is read whole up to MAX_LINE; a longer one becomes
    SKIPPED_LINE, read through a block at a time (`:skip` marks an offset inside such a line). The file is
    never opened through a symbolic link and must be a regular file (`refused` says why not)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # NONBLOCK: a fifo must not hang us
    except FileNotFoundError:
        return Chunk(b"", offset, eof)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Chunk(b"", offset, eof, refused=f"{path.name} is a symbolic link; not followed")
        raise
    with open(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return Chunk(b"", offset, eof, refused=f"{path.name} is not a regular file; not read")
        return read_open_file(fh, info.st_size, offset, limit, eof)


def read_open_file(fh: BinaryIO, size: int, offset: str, limit: int, eof: bool) -> Chunk:
    """`read_file_from` on a file already opened (and checked to be a regular file) of `size` bytes: a local
    file, or one on an SSH host read over SFTP."""
    position, digest, skipping = _parse_offset(offset)
    rewritten = None
    if size < position or digest and _tail_digest(fh, position) != digest:
        rewritten, position, skipping = position, 0, False
    fh.seek(position)
    if skipping and not _pass_line(fh, limit):
        return _chunk(fh, b"", eof, rewritten, skipping=not eof)
    start = fh.tell()
    data = fh.read(limit)
    if eof and len(data) < limit:
        return _chunk(fh, data, True, rewritten)  # the run has ended: a last line without newline is a line
    cut = data.rfind(b"\n") + 1
    if cut:
        fh.seek(start + cut)
        return _chunk(fh, data[:cut], False, rewritten)
    if len(data) < limit:  # a line still being written
        fh.seek(start)
        return _chunk(fh, b"", False, rewritten)
    return _long_line(fh, start, data, limit, eof, rewritten)


def _long_line(fh: BinaryIO, start: int, first: bytes, limit: int, eof: bool, rewritten: int | None) -> Chunk:
    """The line at `start` is longer than one read (`first`): the whole line if it is at most MAX_LINE."""
    parts, size = [first], len(first)
    while size <= MAX_LINE:
        block = fh.read(limit)
        newline = block.find(b"\n")
        if newline >= 0:
            fh.seek(start + size + newline + 1)
            if size + newline > MAX_LINE:
                return _chunk(fh, SKIPPED_LINE, False, rewritten)
            parts.append(block[:newline + 1])
            return _chunk(fh, b"".join(parts), False, rewritten)
        if not block:  # the file ends inside the line
            if eof:
                return _chunk(fh, b"".join(parts), True, rewritten)
            fh.seek(start)
            return _chunk(fh, b"", False, rewritten)  # still being written: wait for its newline
        parts.append(block)
        size += len(block)
    ended = _pass_line(fh, limit)
    return _chunk(fh, SKIPPED_LINE, eof and not ended, rewritten, skipping=not ended and not eof)


def _pass_line(fh: BinaryIO, limit: int) -> bool:
    """Reads on to just past the next newline (True) or to the end of the file (False), a block at a time."""
    while block := fh.read(limit):
        newline = block.find(b"\n")
        if newline >= 0:
            fh.seek(newline + 1 - len(block), os.SEEK_CUR)
            return True
    return False


def _parse_offset(offset: str) -> tuple[int, str, bool]:
    position, _, rest = (offset or "0").partition(":")
    digest, _, state = rest.partition(":")
    return int(position), digest, state == "skip"


def _tail_digest(fh: BinaryIO, position: int) -> str:
    start = max(0, position - _TAIL)
    fh.seek(start)
    return hashlib.blake2b(fh.read(position - start), digest_size=8).hexdigest()


def _chunk(fh: BinaryIO, data: bytes, eof: bool, rewritten: int | None, skipping: bool = False) -> Chunk:
    """The chunk ending at the file's current position, with that position's offset."""
    position = fh.tell()
    offset = f"{position}:{_tail_digest(fh, position)}" + (":skip" if skipping else "")
    return Chunk(data, offset, eof, rewritten)


def redrawn_tail(data: bytes) -> str:
    """What a terminal shows of output after its last newline: the last redraw of a `\r` progress bar (a
    character whose last bytes are not there yet is left out, not shown as U+FFFD)."""
    tail = data.rsplit(b"\n", 1)[-1]
    return log_text(tail[:char_boundary(tail)].decode("utf-8", errors="replace")).strip()  # log_text keeps the last \r
