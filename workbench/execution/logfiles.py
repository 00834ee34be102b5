"""The log of a process run (on this machine or an SSH host): the experiment writes stdout.log and stderr.log
itself; their lines are stamped when read. Offsets are `<stdout.log bytes>,<stderr.log bytes>`."""

from __future__ import annotations

import heapq
import time
from typing import Callable, Iterator

from workbench.execution.base import Chunk
from workbench.logformat import format_line, now_stamp
from workbench.execution.loglines import LineAssembler

LOG_FILES = (("out", "stdout.log"), ("err", "stderr.log"))
OFFSET_EVERY = 1.0  # seconds: how often an offset that moved without a whole line (a bar redrawing) is handed on

Read = Callable[[str, int, int], bytes]  # (file name, from byte, at most bytes) -> the bytes there


def read_log_files(read: Read, running: Callable[[], bool], offset: str, follow: bool, poll: float,
                   limit: int) -> Iterator[Chunk]:
    """Whole lines from `offset`, `limit` bytes of each file at a time, in the order they began within one
    read (a line carried from an earlier read, like a bar, is stamped when it began); with `follow`, looked at every `poll` seconds until the run ends. A line still being written is
    carried to the next read (from its last `\\r` redraw), and ends the log when the run does; the offsets
    handed on are before what is carried, so a reader started from one stores every line once."""
    read_to = [int(part.split(":", 1)[0] or 0) for part in ((offset or "0").split(",") + ["0"])[:2]]
    lines_of = [LineAssembler() for _ in LOG_FILES]
    begun = [""] * len(LOG_FILES)  # when each stream's carried line was first read: its stamp, as Docker's
    handed_on, handed_at = _offset(read_to, lines_of), time.monotonic()
    yielded = ended = False
    while True:
        started = time.monotonic()
        finished = not running()  # looked at first: then nothing is left unread
        stamp, per_stream, more = now_stamp(), [[] for _ in LOG_FILES], False
        for i, (stream, name) in enumerate(LOG_FILES):
            data = read(name, read_to[i], limit)
            read_to[i] += len(data)
            carried = lines_of[i].carried
            texts = lines_of[i].feed(data)
            left = len(data) >= limit
            if finished and not left:
                texts += lines_of[i].finish()
            per_stream[i] = [format_line(begun[i] if n == 0 and carried and begun[i] else stamp, stream, text)
                        for n, text in enumerate(texts)]
            if not lines_of[i].carried:
                begun[i] = ""
            elif texts or not carried:
                begun[i] = stamp  # a new line began in this read
            more = more or left
        # in the order they began (a bar begun earlier before what followed it), each stream's own order kept
        lines = list(heapq.merge(*per_stream, key=lambda line: line[:line.index(b" ")]))
        position = _offset(read_to, lines_of)
        if lines or finished and yielded and not ended or (
                position != handed_on and started - handed_at >= OFFSET_EVERY):
            yield Chunk(b"".join(lines), position, eof=finished and not more)
            handed_on, handed_at = position, started
        yielded, ended = yielded or bool(lines), finished and not more
        if more:
            continue  # a backlog: read on at once
        if finished or not follow:
            return
        time.sleep(max(0.0, poll - (time.monotonic() - started)))


def _offset(read_to: list[int], lines_of: list[LineAssembler]) -> str:
    return ",".join(str(at - lines.carried) for at, lines in zip(read_to, lines_of))
