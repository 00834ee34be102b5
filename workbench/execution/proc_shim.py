"""Supervisor of one process-executor run, started detached (setsid) so the run outlives Workbench.

    python -m workbench.execution.proc_shim RUN_DIR -- ARGV...

Writes into RUN_DIR: `pid` (shim pid, child pid, child start time), `logs.raw` (timestamped stdout and
stderr lines, the executors' common format) and, when the child ends, `exit.json` (atomically).
Standard library only: it must start fast and survive whatever the parent does.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time


def _stamp() -> bytes:
    ns = time.time_ns()
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z").encode()


def main(argv: list[str]) -> int:
    run_dir, sep, *command = argv
    if sep != "--" or not command:
        print("usage: proc_shim RUN_DIR -- ARGV...", file=sys.stderr)
        return 2
    log = open(os.path.join(run_dir, "logs.raw"), "ab", buffering=0)
    child: subprocess.Popen[bytes] | None = None
    cancelled = False

    def on_term(*_: object) -> None:  # cancel = SIGTERM to the shim, forwarded to the run's process group
        nonlocal cancelled
        cancelled = True
        if child is not None:
            _signal_group(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)  # before the pid file exists, so no cancel is ever missed
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, process_group=0)
    except OSError as exc:
        log.write(_stamp() + f" err workbench: cannot start {command[0]!r}: {exc.strerror}\n".encode())
        _write_exit(run_dir, 127, None)
        return 0
    if cancelled:
        _signal_group(child.pid, signal.SIGTERM)
    with open(os.path.join(run_dir, "pid.tmp"), "w") as fh:
        json.dump({"shim": os.getpid(), "shim_start": _proc_start(os.getpid()), "pid": child.pid,
                   "started_at": time.time(), "proc_start": _proc_start(child.pid)}, fh)
    os.replace(os.path.join(run_dir, "pid.tmp"), os.path.join(run_dir, "pid"))

    selector = selectors.DefaultSelector()
    partial = {b"out": b"", b"err": b""}
    selector.register(child.stdout, selectors.EVENT_READ, b"out")
    selector.register(child.stderr, selectors.EVENT_READ, b"err")
    open_streams = 2
    while open_streams:
        for key, _ in selector.select():
            data = os.read(key.fd, 1 << 16)
            name = key.data
            if not data:
                selector.unregister(key.fileobj)
                open_streams -= 1
                if partial[name]:
                    log.write(_stamp() + b" " + name + b" " + partial[name] + b"\n")
                    partial[name] = b""
                continue
            lines = (partial[name] + data).split(b"\n")
            partial[name] = lines.pop()
            if lines:
                stamp = _stamp() + b" " + name + b" "
                log.write(b"".join(stamp + line + b"\n" for line in lines))
    code = child.wait()
    _write_exit(run_dir, code if code >= 0 else 128 - code, -code if code < 0 else None)
    return 0


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _proc_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def _write_exit(run_dir: str, code: int, signal_number: int | None) -> None:
    tmp = os.path.join(run_dir, "exit.json.tmp")
    with open(tmp, "w") as fh:
        json.dump({"exit_code": code, "signal": signal_number, "finished_at": time.time()}, fh)
    os.replace(tmp, os.path.join(run_dir, "exit.json"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
