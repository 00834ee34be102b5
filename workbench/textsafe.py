"""Text from runs (log lines, metric names, params, error messages) is data, never terminal commands:
everything drawn or printed passes through here, so `\\x1b[2J` in a log cannot blank the screen."""

from __future__ import annotations

import re

# CSI (ESC [ ... final), OSC / DCS / PM / APC strings (to BEL or ST), and two-byte escapes
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -~])|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ONE_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def printable(text: str) -> str:
    """One line, every control character shown as an escape (`\\n`, `\\x1b`): for names, keys, params and
    messages, whose exact characters matter."""
    return _ONE_LINE_CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def log_text(line: str) -> str:
    """A log line as a terminal would leave it: escape sequences (colours included) dropped, a carriage
    return overwriting what came before it, other control characters removed; tabs kept."""
    line = line.rstrip("\r")
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    return _CONTROL.sub("", _ESCAPE.sub("", line))


_SGR = re.compile(r"\x1b\[[0-9;]*m")


def coloured_text(line: str) -> str:
    """`log_text` for a terminal: the line's colour sequences (SGR, `\\x1b[91m`) kept, and reset at its end
    so no colour runs on; every other escape and control character dropped."""
    line = line.rstrip("\r")
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    pieces, colours = _SGR.split(line), _SGR.findall(line)
    out = log_text(pieces[0])
    for colour, piece in zip(colours, pieces[1:]):
        out += colour + log_text(piece)
    return out + ("\x1b[0m" if colours else "")
