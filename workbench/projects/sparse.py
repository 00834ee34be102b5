"""Reading a file as its non-zero pieces, so that a sparse file (or one full of zero blocks) is hashed,
stored and sent without its holes costing disk or bytes on the wire.

`pieces` asks the file system where the data is (SEEK_DATA/SEEK_HOLE: a hole is never read) and leaves out
chunks of zeros inside the data too; whatever lies between two pieces, and after the last one up to the
size, is zeros. Writers recreate the file by writing each piece at its offset and setting the size: the
skipped ranges become holes (on file systems that have them), and the bytes are exactly the original's.
"""

from __future__ import annotations

import errno
import hashlib
import os
from typing import Iterator

CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)
_SEEK_DATA = getattr(os, "SEEK_DATA", None)
_SEEK_HOLE = getattr(os, "SEEK_HOLE", None)


def _data_ranges(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each data extent below `size`; the whole file where the system cannot tell, and for
    a file of one chunk or less (asking costs more than reading it)."""
    if _SEEK_DATA is None or _SEEK_HOLE is None or size <= CHUNK:
        yield 0, size
        return
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, _SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left up to the end
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no hole support here: all data
                yield pos, size
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, _SEEK_HOLE), size)
        yield start, end
        pos = end


def pieces(fd: int, size: int, chunk_size: int = CHUNK) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of the first `size` bytes of the open file `fd` that are not zeros, in order, in
    chunks of at most `chunk_size` (≤ CHUNK). Reads with pread; finding the holes moves the file offset."""
    for start, end in _data_ranges(fd, size):
        pos = start
        while pos < end:
            chunk = os.pread(fd, min(chunk_size, end - pos), pos)
            if not chunk:  # shorter than it said: the caller's hash check tells
                return
            # the first byte settles most chunks without copying a slice of zeros to compare with
            if chunk[0] or chunk != _ZEROS[:len(chunk)]:
                yield pos, chunk
            pos += len(chunk)


class Hasher:
    """sha256 of the logical content, fed piece by piece: the zeros between pieces are hashed too."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.pos = 0

    def update(self, offset: int, chunk: bytes) -> None:
        self.zeros_to(offset)
        self.digest.update(chunk)
        self.pos = offset + len(chunk)

    def zeros_to(self, offset: int) -> None:
        view = memoryview(_ZEROS)
        while self.pos < offset:
            step = min(CHUNK, offset - self.pos)
            self.digest.update(view[:step])
            self.pos += step

    def hexdigest(self, size: int) -> str:
        self.zeros_to(size)
        return self.digest.hexdigest()


def hash_fd(fd: int, size: int) -> str:
    """sha256 of the first `size` bytes of `fd` (equal to hashing every byte, without reading a hole)."""
    hasher = Hasher()
    for offset, chunk in pieces(fd, size):
        hasher.update(offset, chunk)
    return hasher.hexdigest(size)


def copy_fd(src: int, dst: int, size: int) -> str:
    """Copies the first `size` bytes of `src` into the empty file `dst` with holes where `src` has holes or
    zeros; returns the sha256 of what was copied."""
    hasher = Hasher()
    for offset, chunk in pieces(src, size):
        hasher.update(offset, chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.pwrite(dst, view, offset + len(chunk) - len(view)):]
    os.ftruncate(dst, size)
    return hasher.hexdigest(size)


def data_bytes(path: str) -> int:
    """Bytes a file holds in data extents (what a copy through `pieces` reads at most)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return sum(end - start for start, end in _data_ranges(fd, os.fstat(fd).st_size))
    finally:
        os.close(fd)
