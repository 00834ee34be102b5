"""The newest lines of a run's stored log (`logs.txt`), as the app's run detail shows them each second: read
from where the last read ended, never more than a fixed tail, parsed and made safe to draw."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workbench.logformat import split_line
from workbench.textsafe import log_text

LOG_TAIL_BYTES = 256 * 1024  # the most one read takes of logs.txt: the newest, whatever the file's size
LOG_TAIL_LINES = 5000  # the most lines one read hands back
MAX_LINE_CHARS = 4000  # a longer line is cut (the CLI's `runs logs` prints it whole)


@dataclass
class LogChunk:
    """Lines read from logs.txt in one refresh: where the next read starts, and how much was passed over."""
    lines: list[str] = field(default_factory=list)
    offset: int = 0
    skipped_bytes: int = 0


def read_log_tail(path: Path, offset: int, cap: int = LOG_TAIL_BYTES, max_lines: int = LOG_TAIL_LINES) -> LogChunk:
    """The complete lines of `path` from byte `offset`, never more than its last `cap` bytes
    and `max_lines` lines: what lies before them is passed over and counted. Lines come parsed and made
    safe to draw. A partial last line is left for the next read; a read that starts inside a line (after a
    skip) begins at the next one."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return LogChunk(offset=offset)
    with fh:
        end = fh.seek(0, 2)
        begin = min(offset, end)  # the file was cut back (ingestion rewrites an uncommitted tail)
        start = max(begin, end - cap)
        if start >= end:
            return LogChunk(offset=end)
        fh.seek(start - 1 if start else 0)
        data = fh.read(end - start + (1 if start else 0))
    skipped = start - begin
    if start:
        before, data = data[:1], data[1:]
        if before != b"\n":  # inside a line whose start was never read: begin at the next line
            newline = data.find(b"\n")
            if newline < 0:  # all of it one unfinished line: pass it over
                return LogChunk(offset=end, skipped_bytes=skipped + len(data))
            skipped += newline + 1
            start += newline + 1
            data = data[newline + 1:]
    cut = data.rfind(b"\n") + 1
    raw = data[:cut].split(b"\n")[:-1]
    dropped = max(0, len(raw) - max_lines)
    if dropped:
        skipped += sum(len(line) + 1 for line in raw[:dropped])
        raw = raw[dropped:]
    shown = []
    for line in raw:
        text = log_text(split_line(line.decode("utf-8", errors="replace"))[2])
        shown.append(text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + "…")
    return LogChunk(shown, start + cut, skipped)
