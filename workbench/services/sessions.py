"""JupyterLab sessions: a run of kind 'session' (placed, pinned to its GPUs, costed and cancelled like a run)
whose container serves JupyterLab on the project's working copy. Opened (started, reached, waited for until
it answers), attached to again, listed, and stopped (its changed files brought back: session_files.py).

The token and the local port live in the local run dir's session.json (session_setup.py), never in SQLite. A
session on an SSH host is reached through a detached forwarder, `workbench _tunnel ID` (its pid in
tunnel.pid), from the local port to the port the host's engine published on its loopback."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from workbench.errors import EngineUnavailable, WorkbenchError
from workbench.execution.base import Handle
from workbench.projects.spec import load_spec
from workbench.services.context import Services, first_line, start_detached
from workbench.services.launch import place_and_start
from workbench.services.runs import cancel
from workbench.services.session_files import bring_back
from workbench.services.session_setup import (LOOPBACK, check_local_port, docker_needed, free_local_port,
                                              read_session_file, save_port, session_experiment)

READY_TIMEOUT = 180.0
READY_TRY = 2.0  # seconds one readiness request may take
TUNNEL_PID = "tunnel.pid"
TUNNEL_WATCH = 5.0  # how often a forwarder looks whether its session still runs


def session_url(port: int, token: str) -> str:
    return f"http://{LOOPBACK}:{port}/lab?token={token}"


def open_session(wb: Services, path: str, experiment: str | None = None, *, machine: str | None = None,
                 gpus: int | None = None, port: int | None = None, queue: bool = False) -> dict[str, Any]:
    """Starts JupyterLab for the project's experiment on a machine that can give its GPUs now (refused
    otherwise, or queued with `queue`), and waits until it answers. The session's record, with `url`,
    `token` and `port` (None while queued)."""
    if gpus is not None and gpus < 0:
        raise WorkbenchError(f"--gpus {gpus}: give 0 or more")
    if port is not None:
        check_local_port(port)
    spec = load_spec(path)
    exp = session_experiment(spec.experiment(experiment), gpus)
    requested: str | list[str] = machine if machine is not None else (exp.machines or exp.machine or "local")
    if isinstance(requested, str) and requested != "auto":
        requested = [_docker_machine(wb, requested)]
    run = place_and_start(wb, spec, exp, {}, requested, "docker", queue=queue, session={"port": port})
    if run["status"] == "queued":
        return {**run, "url": None, "token": None, "port": None}
    wb.follow_in_background(run["id"])
    return connect(wb, run)


def _docker_machine(wb: Services, machine: str) -> str:
    """`machine` when its Docker engine answers; a one-line refusal otherwise (a Slurm cluster, no engine)."""
    resolved = wb.executors.resolve(machine)
    if resolved.kind == "slurm":
        raise WorkbenchError(docker_needed(resolved.name) + " (a Slurm cluster)")
    try:
        wb.executors.docker_client_for(resolved)
    except EngineUnavailable as exc:
        raise WorkbenchError(f"{docker_needed(resolved.name)} ({exc.message})",
                             hint="start Docker there, or pick another machine with --machine") from None
    return resolved.name


def attach_session(wb: Services, ref: str, port: int | None = None) -> dict[str, Any]:
    """A running session reached again: its forwarder (re)started on an SSH host, waited for until it answers."""
    run = _session(wb, ref)
    if run["status"] == "queued":
        raise WorkbenchError(f"session {run['id']} is still queued ({run.get('status_reason') or 'waiting'})",
                             hint="attach once it runs (`workbench sessions list`)")
    if run["status"] != "running":
        raise WorkbenchError(f"session {run['id']} has ended ({run['status']}); there is nothing to attach to",
                             hint="open another with `workbench notebook PATH`")
    local = wb.dirs.run_dir(run["id"])
    kept = read_session_file(local)
    if port is not None and port != kept.get("port"):
        if wb.executors.is_remote(run["machine"]) and not _tunnel_alive(local):
            check_local_port(port)
            save_port(local, port)
        else:
            raise WorkbenchError(f"session {run['id']} is reached on port {kept.get('port')}; it cannot move now",
                                 hint=f"leave --port out, or use {kept.get('port')}")
    return connect(wb, run)


def connect(wb: Services, run: dict[str, Any]) -> dict[str, Any]:
    """The session's URL once JupyterLab answers there (its forwarder started first on an SSH host)."""
    local = wb.dirs.run_dir(run["id"])
    session = read_session_file(local)
    if wb.executors.is_remote(run["machine"]):
        if not session.get("port"):
            session = save_port(local, free_local_port())
        if not _tunnel_alive(local):
            start_detached(wb, ["_tunnel", run["id"]], local / "tunnel.err")
    wait_ready(wb, run, session["port"], session["token"])
    return {**run, "url": session_url(session["port"], session["token"]), "token": session["token"],
            "port": session["port"]}


def wait_ready(wb: Services, run: dict[str, Any], port: int, token: str, timeout: float = READY_TIMEOUT) -> None:
    """Until `GET /api/status` with the token answers 200 on the local port; a one-line error when the
    session ends first, or after `timeout` seconds."""
    url = f"http://{LOOPBACK}:{port}/api/status?token={token}"
    executor, handle = wb.executors.for_run(run), Handle.from_record(run["handle"])
    deadline = time.monotonic() + timeout
    checked_at = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=READY_TRY) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass  # not listening yet, or starting up
        if time.monotonic() - checked_at >= 2.0:
            checked_at = time.monotonic()
            if executor.status(handle).state != "running":
                raise WorkbenchError(f"session {run['id']} ended before JupyterLab answered",
                                     hint=f"its output: `workbench runs logs {run['id']}`")
        if time.monotonic() >= deadline:
            raise WorkbenchError(f"JupyterLab of session {run['id']} did not answer within {timeout:.0f} s",
                                 hint=f"its output: `workbench runs logs {run['id']}`; try again with "
                                      f"`workbench notebook --attach {run['id']}`")
        time.sleep(0.5)


def sessions(wb: Services, limit: int = 50) -> list[dict[str, Any]]:
    """Running and recent sessions, newest first; a running one with its URL."""
    found = []
    for run in wb.store.sessions(limit):
        url = token = port = None
        if run["status"] == "running":
            try:
                kept = read_session_file(wb.dirs.run_dir(run["id"]))
                token, port = kept["token"], kept.get("port")
                url = session_url(port, token) if port else None
            except WorkbenchError:
                pass
        found.append({**run, "url": url, "token": token, "port": port})
    return found


def stop_session(wb: Services, ref: str) -> dict[str, Any]:
    """Stops the session's container (the run's cancel: its GPUs released, its cost closed), its forwarder,
    then brings its changed files back. The record with `brought_back`: what that did (or why not yet)."""
    run = _session(wb, ref)
    if run["status"] in ("queued", "running"):
        run = cancel(wb, run["id"])
    stop_tunnel(wb.dirs.run_dir(run["id"]))
    if run["status"] in ("queued", "running"):
        raise WorkbenchError(f"session {run['id']} did not stop in time", hint="run `workbench sessions stop` again")
    try:
        said = bring_back(wb, run) or ("another process is still bringing its files back" if run.get("handle")
                                       else "it never started: nothing to bring back")
    except WorkbenchError as exc:
        said = f"its files are not brought back yet ({exc.message}); they come back when {run['machine']} answers"
    return {**run, "url": None, "token": None, "port": None, "brought_back": said}


def _session(wb: Services, ref: str) -> dict[str, Any]:
    run = wb.store.get_run(ref)
    if run.get("kind") != "session":
        raise WorkbenchError(f"run {run['id']} is not a session", hint=f"stop a run with `workbench runs cancel "
                                                                       f"{run['id']}`")
    return run


# the forwarder of a session on an SSH host --------------------------------------------------------------------
def _tunnel_pid(local_run_dir: Path) -> int | None:
    try:
        pid = int((local_run_dir / TUNNEL_PID).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"_tunnel" in cmdline else None  # a pid used again since is someone else's


def _tunnel_alive(local_run_dir: Path) -> bool:
    return _tunnel_pid(local_run_dir) is not None


def stop_tunnel(local_run_dir: Path) -> None:
    pid = _tunnel_pid(local_run_dir)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    (local_run_dir / TUNNEL_PID).unlink(missing_ok=True)


def serve_tunnel(wb: Services, ref: str) -> None:
    """The forwarder's loop (`workbench _tunnel ID`): the session's local port to the port its host's engine
    published, reconnecting when the connection drops, until the session ends or it is told to stop."""
    from workbench.machines.tunnel import Tunnel, bind_local  # paramiko: loaded only by the forwarder

    run = _session(wb, ref)
    local = wb.dirs.run_dir(run["id"])
    port = read_session_file(local)["port"]
    remote_port = Handle.from_record(run["handle"] or {}).port
    if run["status"] != "running" or not remote_port:
        raise WorkbenchError(f"session {run['id']} is not running; nothing to forward")
    listener = bind_local(port)
    (local / TUNNEL_PID).write_text(str(os.getpid()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch() -> None:
        while not stop.wait(TUNNEL_WATCH):
            try:
                if wb.store.get_run(run["id"])["status"] != "running":
                    stop.set()
            except Exception as exc:  # noqa: BLE001 - the forwarder goes on; the next look may answer
                wb.progress(f"tunnel of session {run['id']}: {first_line(exc)}")

    threading.Thread(target=watch, name="tunnel-watch", daemon=True).start()
    try:
        Tunnel(wb.executors.connection(run["machine"]), listener, LOOPBACK, remote_port).serve(stop)
    finally:
        if _tunnel_pid(local) == os.getpid():
            (local / TUNNEL_PID).unlink(missing_ok=True)
