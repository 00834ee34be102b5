"""Runs as detached processes on this machine (no Docker): a setsid supervisor per run records the pid,
start time, logs and exit code in the run dir, so a run outlives Workbench and can be reconciled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from workbench.errors import WorkbenchError
from workbench.execution.base import Chunk, Launch, RunState, container_paths, read_file_from

LOG_CHUNK = 1 << 20
FOLLOW_POLL = 0.1


class ProcessExecutor:
    name = "process"

    def __init__(self, runs_root: Path) -> None:
        self.runs_root = runs_root

    def submit(self, launch: Launch) -> dict[str, Any]:
        if launch.gpu_ids:
            raise WorkbenchError("the process executor does not pin GPUs", hint="use --executor docker or gpus = 0")
        paths = container_paths(launch.run_dir)
        paths["out"].mkdir(parents=True, exist_ok=True)
        env = {**_base_env(), **launch.env, "WORKBENCH_OUTPUT": str(paths["out"]),
               "WORKBENCH_METRICS": str(paths["metrics"])}
        bad = [k for k in env if not k or "=" in k or "\0" in k] + [k for k, v in env.items() if "\0" in v]
        if bad:
            raise WorkbenchError(f"environment variable {bad[0]!r} cannot be passed to a process (empty, '=' or NUL)")
        try:
            subprocess.Popen(
                [sys.executable, "-m", "workbench.execution.proc_shim", str(launch.run_dir), "--", *launch.argv],
                cwd=launch.snapshot_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(launch.run_dir / "shim.err", "ab"), start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            raise WorkbenchError(f"cannot start the run supervisor: {exc}") from None
        pid_file = launch.run_dir / "pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and not (launch.run_dir / "exit.json").exists():
            if time.monotonic() > deadline:
                raise WorkbenchError(f"the run supervisor did not start (see {launch.run_dir / 'shim.err'})")
            time.sleep(0.005)
        return {"run_dir": str(launch.run_dir), **_read_json(pid_file)}

    def status(self, handle: dict[str, Any]) -> RunState:
        run_dir = Path(handle["run_dir"])
        exit_info = _read_json(run_dir / "exit.json")
        if exit_info:
            reason = None
            if exit_info.get("signal"):
                try:
                    name = signal.Signals(exit_info["signal"]).name
                except ValueError:
                    name = "?"
                reason = f"killed by signal {exit_info['signal']} ({name})"
            return RunState("exited", exit_code=exit_info["exit_code"], reason=reason,
                            started_at=handle.get("started_at"), finished_at=exit_info.get("finished_at"))
        if _alive(handle.get("shim"), handle.get("shim_start")):
            return RunState("running", started_at=handle.get("started_at"))
        if exit_info := _read_json(run_dir / "exit.json"):  # finished between the two looks
            return self.status(handle)
        return RunState("missing", reason="its supervisor process is gone and recorded no exit code")

    def read_logs(self, handle: dict[str, Any], offset: str, follow: bool) -> Iterator[Chunk]:
        path = Path(handle["run_dir"]) / "logs.raw"
        while True:
            finished = self.status(handle).state != "running"
            chunk = read_file_from(path, offset, LOG_CHUNK, finished)
            if chunk.data:
                offset = chunk.offset
                yield chunk
                continue
            if finished or not follow:
                return
            time.sleep(FOLLOW_POLL)

    def read_metrics(self, handle: dict[str, Any], offset: str, limit: int, final: bool) -> Chunk:
        return read_file_from(container_paths(Path(handle["run_dir"]))["metrics"], offset, limit, final)

    def fetch_artifacts(self, handle: dict[str, Any], dest: Path) -> Path:
        return container_paths(Path(handle["run_dir"]))["out"]

    def cancel(self, handle: dict[str, Any]) -> None:
        shim, start = handle.get("shim"), handle.get("shim_start")
        if _alive(shim, start):
            os.kill(shim, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(shim, start) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(shim, start) and handle.get("pid"):
            try:
                os.killpg(handle["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass

    def list(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return []  # process runs are found through their run dirs, which the database names

    def cleanup(self, handle: dict[str, Any]) -> None:
        (Path(handle["run_dir"]) / "logs.raw").unlink(missing_ok=True)


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "VIRTUAL_ENV", "PYTHONPATH")
    return {k: os.environ[k] for k in keep if k in os.environ}


def _alive(pid: int | None, start: str | None = None) -> bool:
    """The process lives (not a zombie) and, when its start time was recorded, is the same process
    (a recycled pid has another start time)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and (start is None or fields[19] == start)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
