"""The offset reader: whole lines of a file from an opaque offset that notices a file truncated or rewritten
under it (a run's metrics.jsonl, read here or over SFTP on a host)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from workbench.execution.base import Chunk

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
