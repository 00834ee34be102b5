"""Supervisor of one process-executor run, started detached (setsid) so the run outlives Workbench.

    python -m workbench.execution.proc_shim RUN_DIR -- ARGV...

Writes into RUN_DIR: `pid` (shim pid, child pid, their start times) and, when the child ends, `exit.json`
(atomically). The child leads its own process group and writes its stdout and stderr straight into
`stdout.log` and `stderr.log`: its output never passes through this process, so a run whose supervisor is
killed keeps its output, and the executor, which watches the group too, keeps following it.
Standard library only: it must start fast and survive whatever the parent does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    run_dir, sep, *command = argv
    if sep != "--" or not command:
        print("usage: proc_shim RUN_DIR -- ARGV...", file=sys.stderr)
        return 2
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    out = os.open(os.path.join(run_dir, "stdout.log"), flags, 0o600)
    err = os.open(os.path.join(run_dir, "stderr.log"), flags, 0o600)
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
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, process_group=0)
    except OSError as exc:
        os.write(err, f"workbench: cannot start {command[0]!r}: {exc.strerror}\n".encode())
        _write_exit(run_dir, 127, None)
        return 0
    finally:
        os.close(out)
        os.close(err)
    if cancelled:
        _signal_group(child.pid, signal.SIGTERM)
    with open(os.path.join(run_dir, "pid.tmp"), "w") as fh:
        json.dump({"shim": os.getpid(), "shim_start": _proc_start(os.getpid()), "pid": child.pid,
                   "started_at": time.time(), "proc_start": _proc_start(child.pid)}, fh)
    os.replace(os.path.join(run_dir, "pid.tmp"), os.path.join(run_dir, "pid"))
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
