"""A run's log lines on the terminal, with the line its progress bar redraws kept below them."""

from __future__ import annotations

import shutil
import sys
import threading
from typing import Any, Callable

from workbench.logformat import split_line
from workbench.textsafe import log_text, printable


class ProgressLine:
    """The line a run is redrawing (its progress bar), kept as the terminal's last line below the log:
    redrawn in place with `\r`, cleared before log lines are printed above it. Only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stdout.isatty()
        self.text = ""
        self.lock = threading.RLock()  # the log and the progress arrive on different threads under --wait

    def show(self, text: str) -> None:
        with self.lock:
            self.text = text
            self._draw()

    def _draw(self) -> None:
        if self.enabled:
            width = shutil.get_terminal_size().columns - 1
            sys.stdout.write("\r\x1b[K" + printable(self.text)[:width])
            sys.stdout.flush()

    def around(self, write: Any) -> None:
        """Runs `write` (log lines) with the progress line moved out of the way and drawn again after."""
        with self.lock:
            if self.enabled and self.text:
                sys.stdout.write("\r\x1b[K")
                sys.stdout.flush()
            write()
            if self.text:
                self._draw()


def log_printer(timestamps: bool, raw: bool = False, progress: ProgressLine | None = None
                ) -> Callable[[bytes], None]:
    """Log lines as a terminal would leave them (escape sequences dropped), or byte for byte with `raw`."""
    out = sys.stdout.buffer

    def sink(data: bytes) -> None:
        if progress is not None:
            progress.around(lambda: write(data))
        else:
            write(data)

    def write(data: bytes) -> None:
        lines = []
        text = data.decode("utf-8", errors="replace")
        for line in text[:-1].split("\n") if text.endswith("\n") else text.split("\n"):  # not splitlines: \r
            stamp, _, body = split_line(line)
            body = body if raw else log_text(body)
            lines.append(f"{stamp} {body}" if timestamps else body)
        out.write(("\n".join(lines) + "\n").encode())
        out.flush()

    return sink
