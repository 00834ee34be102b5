"""The CLI on a real terminal: a pty of a given size as its stdout and stderr (no COLUMNS set), for output
that depends on the terminal it is printed on."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from helpers import Result


@pytest.fixture
def tty_cli(home):
    """Runs `workbench ARGS` with a `columns`×24 pty as stdout and stderr; returns its code and what the
    terminal received (`\\r\\n` read as `\\n`) as `out` (stderr is on the same terminal: `err` is empty)."""
    def run(*args: str, columns: int = 80, timeout: float = 120, typed: str | None = None,
            env: dict[str, str] | None = None) -> Result:
        """`typed`: the terminal is stdin too, and this is typed on it (else stdin is /dev/null)."""
        main, secondary = pty.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        full_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "WORKBENCH_DEBUG")}
        full_env.update({"WORKBENCH_HOME": str(home), "TERM": "xterm-256color", **(env or {})})
        process = subprocess.Popen([sys.executable, "-m", "workbench", *args],
                                   stdin=subprocess.DEVNULL if typed is None else secondary, stdout=secondary,
                                   stderr=secondary, env=full_env)
        os.close(secondary)
        if typed is not None:
            os.write(main, typed.encode())  # the terminal keeps it until the command reads
        out, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the last writer closed: everything was read
                    break
                if not chunk:
                    break
                out += chunk
            elif process.poll() is not None:
                break
        os.close(main)
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        return Result(code, out.decode("utf-8", "replace").replace("\r\n", "\n"), "")
    return run
