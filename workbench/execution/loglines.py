"""Whole log lines out of output read in pieces of any size (a file read a block at a time, Docker's 16 KiB log
records): what follows the last newline is carried into the next piece, never stored as a line of its own, so
neither a line's `\\r` redraws (a progress bar) nor a multi-byte character is ever cut in two."""

from __future__ import annotations

PIECE = 1 << 20  # a line that runs on this long after its last `\r` redraw is stored in pieces of about this size


class LineAssembler:
    """Takes a stream's bytes in any pieces and gives back its complete lines (without their newline).

    Of the line still being written only what a terminal would still show is kept: the text from its last
    `\\r` redraw on (logformat keeps the same of a stored line), so a bar redrawn a million times costs one
    frame of memory. What is kept is always the last `carried` bytes fed: a reader that starts again
    `carried` bytes before where it had read to gets exactly the lines this one will."""

    def __init__(self, piece: int = PIECE) -> None:
        self._pending = b""
        self._piece = piece

    @property
    def carried(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes) -> list[bytes]:
        newline = data.rfind(b"\n")
        if newline < 0:
            self._pending = _from_last_redraw(self._pending + data)
            return self._long_piece()
        whole = self._pending + data[:newline] if self._pending else data[:newline]
        self._pending = _from_last_redraw(data[newline + 1:])
        return whole.split(b"\n") + self._long_piece()

    def finish(self) -> list[bytes]:
        """The output has ended: the line still being written is complete as it stands."""
        last, self._pending = self._pending, b""
        return [last] if last else []

    def _long_piece(self) -> list[bytes]:
        """A line that never ends (no newline, no redraw) is stored in pieces of at most `piece` bytes, each
        cut between characters (whatever size the reads were)."""
        pieces = []
        while len(self._pending) > self._piece:
            cut = char_boundary(self._pending[:self._piece]) or self._piece  # (0: not UTF-8 there; cut anyway)
            pieces.append(self._pending[:cut])
            self._pending = self._pending[cut:]
        return pieces


def _from_last_redraw(data: bytes) -> bytes:
    """The end of `data` from where its last non-empty `\\r` redraw starts (all of it without one)."""
    end = len(data)
    while end and data[end - 1] == 0x0D:  # trailing \r: the redraw before them is what shows
        end -= 1
    cut = data.rfind(b"\r", 0, end)
    return data[cut + 1:] if cut >= 0 else data


def char_boundary(data: bytes) -> int:
    """Where an incomplete UTF-8 sequence at the end of `data` starts (len(data) when there is none)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: its lead is further back
            continue
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if need > back else len(data)
        return len(data)
    return len(data)
