"""The one log line format every executor yields and logs.txt stores: `<RFC3339 UTC time> <out|err> <text>`."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_stamp() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def stamp_to_ns(stamp: str) -> int:
    """Parses Docker's RFC3339Nano (trailing zeros trimmed) to integer nanoseconds since the epoch."""
    base, _, frac = stamp.rstrip("Z").partition(".")
    seconds = int(datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


def format_line(stamp: str, stream: str, text: bytes) -> bytes:
    return stamp.encode() + (b" out " if stream == "out" else b" err ") + _visible(text) + b"\n"


def split_line(line: str) -> tuple[str, str, str]:
    """(time, stream, text) of a stored log line; tolerant of lines written by hand."""
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) == 3 and parts[1] in ("out", "err"):
        return parts[0], parts[1], parts[2]
    if len(parts) == 2 and parts[1] in ("out", "err"):
        return parts[0], parts[1], ""
    return "", "out", line.rstrip("\n")


def _visible(text: bytes) -> bytes:
    """What a terminal would show of a line: progress bars redraw with \\r, keep the last redraw."""
    text = text.rstrip(b"\n").rstrip(b"\r")
    return text.rsplit(b"\r", 1)[-1] if b"\r" in text else text
