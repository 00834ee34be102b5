"""Runs as detached processes on this machine (no Docker): a setsid supervisor per run records the pids,
start times and exit code in the run dir, where the experiment writes its own stdout.log and stderr.log, so a
run outlives Workbench, and even its supervisor, and can be reconciled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from workbench.errors import WorkbenchError
from workbench.execution import runtime
from workbench.execution.base import (BackendSettings, Chunk, Handle, Launch, Machine, RunState, exited, metrics_path,
                                      out_dir, redrawn_tail)
from workbench.execution.hosts import LocalHost
from workbench.execution.logfiles import LOG_FILES, read_log_files

LOG_CHUNK = 1 << 20
PROGRESS_POLL = 0.25
PROGRESS_TAIL = 8192
FOLLOW_POLL = 0.1
CANCEL_GRACE = 10.0
SUPERVISOR_KILLED = "its supervisor was killed; the exit code is unknown"


class ProcessExecutor:
    name = "process"

    def __init__(self, machine: Machine, host: LocalHost, settings: BackendSettings) -> None:
        self.machine, self.host = machine, host

    def submit(self, launch: Launch) -> Handle:
        if launch.gpu_ids:
            raise WorkbenchError("the process executor does not pin GPUs", hint="use --executor docker or gpus = 0")
        run_dir = Path(launch.run_dir)
        out = out_dir(str(launch.run_dir))
        Path(out).mkdir(parents=True, exist_ok=True)
        env = {**launch.env, "WORKBENCH_OUTPUT": out, "WORKBENCH_METRICS": metrics_path(str(launch.run_dir))}
        base = _base_env()
        env = {**base, **runtime.with_runtime(env, launch.runtime_dir, base.get("PYTHONPATH"))}
        bad = [k for k in env if not k or "=" in k or "\0" in k] + [k for k, v in env.items() if "\0" in v]
        if bad:
            raise WorkbenchError(f"environment variable {bad[0]!r} cannot be passed to a process (empty, '=' or NUL)")
        try:
            subprocess.Popen(
                [sys.executable, "-m", "workbench.execution.proc_shim", str(launch.run_dir), "--",
                 *[a.replace("{output}", out) for a in launch.argv]],
                cwd=launch.snapshot_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(run_dir / "shim.err", "ab"), start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise WorkbenchError(f"cannot start the run supervisor: {exc}") from None
        pid_file = run_dir / "pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and not (run_dir / "exit.json").exists():
            if time.monotonic() > deadline:
                raise WorkbenchError(f"the run supervisor did not start (see {run_dir / 'shim.err'})")
            time.sleep(0.005)
        return Handle.from_record({**_read_json(pid_file), "run_dir": str(launch.run_dir), "machine": "local"})

    def status(self, handle: Handle) -> RunState:
        run_dir = Path(handle.run_dir)
        exit_info = _read_json(run_dir / "exit.json")
        if not exit_info and _alive(handle.shim, handle.shim_start):
            return RunState("running", started_at=handle.started_at)
        exit_info = exit_info or _read_json(run_dir / "exit.json")  # it may have finished between the two looks
        if exit_info:
            return exited(exit_info, handle.started_at)
        if not handle.pid or not (run_dir / "pid").exists():
            return RunState("missing", reason="its supervisor process is gone and left no record of the run")
        if _group_alive(handle.pid, handle.proc_start):
            return RunState("running", started_at=handle.started_at)
        # the supervisor died before the experiment: it ended, but nobody was there to see how
        return RunState("exited", exit_code=None, reason=SUPERVISOR_KILLED, started_at=handle.started_at)

    def read_logs(self, handle: Handle, offset: str, follow: bool) -> Iterator[Chunk]:
        """The run's stdout.log and stderr.log (logfiles.read_log_files), a live run looked at every FOLLOW_POLL."""
        run_dir = Path(handle.run_dir)
        return read_log_files(lambda name, start, limit: _read_range(run_dir / name, start, limit),
                              lambda: self.status(handle).state == "running", offset, follow, FOLLOW_POLL, LOG_CHUNK)

    def progress(self, handle: Handle, stop: threading.Event) -> Iterator[str]:
        """The unfinished last line of whichever stream wrote last, looked at every PROGRESS_POLL."""
        run_dir = Path(handle.run_dir)
        while not stop.is_set():
            tails = []
            for _, name in LOG_FILES:
                try:
                    with open(run_dir / name, "rb") as fh:
                        size = os.fstat(fh.fileno()).st_size
                        fh.seek(max(0, size - PROGRESS_TAIL))
                        tails.append((os.fstat(fh.fileno()).st_mtime_ns, redrawn_tail(fh.read())))
                except OSError:
                    continue
            yield max(tails)[1] if tails else ""
            if self.status(handle).state != "running":
                return
            stop.wait(PROGRESS_POLL)

    def read_metrics(self, handle: Handle, offset: str, limit: int, final: bool) -> Chunk:
        return self.host.read_from(metrics_path(handle.run_dir), offset, limit, final)

    def cancel(self, handle: Handle) -> None:
        """SIGTERM to the supervisor, which forwards it to the run's process group, or to the group itself
        when the supervisor was killed; SIGKILL to whatever of the group is left after CANCEL_GRACE."""
        shim, shim_start = handle.shim, handle.shim_start
        group, leader_start = handle.pid, handle.proc_start

        def group_alive() -> bool:
            return bool(group) and _group_alive(group, leader_start)

        if _alive(shim, shim_start):
            _signal(os.kill, shim, signal.SIGTERM)
        elif group_alive():
            _signal(os.killpg, group, signal.SIGTERM)
        deadline = time.monotonic() + CANCEL_GRACE
        while (_alive(shim, shim_start) or group_alive()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive():
            _signal(os.killpg, group, signal.SIGKILL)

    def adopt(self, run_id: str, run_dir: str) -> Handle | None:
        """The handle of a run whose launcher died before recording it, from its run dir; None if it never started."""
        path = Path(run_dir)
        if (path / "pid").exists() or (path / "exit.json").exists():
            return Handle.from_record({**_read_json(path / "pid"), "run_dir": str(run_dir), "machine": "local"})
        return None

    def list(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return []  # process runs are found through their run dirs, which the database names

    def cleanup(self, handle: Handle) -> None:
        for _, name in LOG_FILES:  # ingested into logs.txt beside them
            (Path(handle.run_dir) / name).unlink(missing_ok=True)


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "VIRTUAL_ENV", "PYTHONPATH")
    return {k: os.environ[k] for k in keep if k in os.environ}


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from its state field on: [0] state, [2] process group, [19] start time."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int | None, start: str | None = None) -> bool:
    """The process lives (not a zombie) and, when its start time was recorded, is the same process
    (a recycled pid has another start time)."""
    fields = _stat(pid) if pid else None
    return fields is not None and fields[0] != "Z" and (start is None or fields[19] == start)


def _group_alive(pgid: int, leader_start: str | None) -> bool:
    """A live member is left in the process group the run's leader started. The kernel does not reuse a
    pid while a group still bears it, so a process with that pid but another start time means it is gone."""
    leader = _stat(pgid)
    if leader is not None:
        if leader_start is not None and leader[19] != leader_start:
            return False
        if leader[0] != "Z":
            return True
    for entry in os.scandir("/proc"):  # the leader has ended; what it started may not have
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[2] == str(pgid) and fields[0] != "Z":
                return True
    return False


def _signal(send: Any, target: int, sig: int) -> None:
    try:
        send(target, sig)
    except ProcessLookupError:
        pass


def _read_range(path: Path, start: int, limit: int) -> bytes:
    """Up to `limit` bytes of a file from a byte offset (b"" when it is not there, or is a link)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return b""  # not written yet (or replaced by something that is not a file)
    with os.fdopen(fd, "rb") as fh:
        fh.seek(start)
        return fh.read(limit)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
