"""JupyterLab sessions: a run of kind 'session' (placed, pinned to its GPUs, costed and cancelled like a run)
whose container serves JupyterLab on the project's working copy. Opened (started, reached, waited for until
it answers), attached to again, listed, and stopped (its changed files brought back: session_files.py).

The token and the local port live in the local run dir's session.json (session_setup.py), never in SQLite. A
session on an SSH host is reached through a detached forwarder, `workbench _tunnel ID` (its pid in
tunnel.pid, written once it listens; it holds an flock on tunnel.lock for its life, so a pid file left by a
dead one, or a pid used again since, is never taken for it), from the local port to the port the host's
engine published on its loopback."""

from __future__ import annotations

import fcntl
import http.client
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from workbench.errors import EngineUnavailable, NotFound, WorkbenchError
from workbench.execution.base import Handle
from workbench.machines.ssh import SSHError
from workbench.projects.spec import load_spec
from workbench.services.context import Services, first_line, start_detached
from workbench.services.launch import place_and_start
from workbench.services.runs import cancel
from workbench.services.session_files import bring_back
from workbench.services.session_setup import (LAB_PORT, LOOPBACK, check_local_port, docker_needed, free_local_port,
                                              read_session_file, save_port, session_experiment)

READY_TIMEOUT = 180.0
READY_TRY = 2.0  # seconds one readiness request may take
TUNNEL_PID = "tunnel.pid"
TUNNEL_LOCK = "tunnel.lock"
TUNNEL_ERR = "tunnel.err"
TUNNEL_WATCH = 5.0  # how often a forwarder looks whether its session still runs
TUNNEL_WATCH_FAILURES = 12  # looks failing in a row (a minute) after which a forwarder gives up
TUNNEL_START = 30.0  # how long a forwarder just started may take to listen


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
    forwarder = None
    if wb.executors.is_remote(run["machine"]):
        forwarder = local
        errors = local / TUNNEL_ERR
        errors_from = errors.stat().st_size if errors.exists() else 0
        if not _tunnel_alive(local):
            save_port(local, _port_to_listen_on(wb, run["id"], session.get("port")))
            start_detached(wb, ["_tunnel", run["id"]], errors)
        _wait_listening(run["id"], local, errors_from)  # (one started by another attach may still be starting)
        session = read_session_file(local)
    wait_ready(wb, run, session["port"], session["token"], forwarder=forwarder)
    return {**run, "url": session_url(session["port"], session["token"]), "token": session["token"],
            "port": session["port"]}


def _port_to_listen_on(wb: Services, run_id: str, saved: int | None) -> int:
    """The session's saved local port when it is still free here; a fresh free one (said) when it is taken
    now (by another program since a reboot, say) or none was saved."""
    if saved:
        try:
            check_local_port(saved)
            return saved
        except WorkbenchError:
            port = free_local_port()
            wb.progress(f"port {saved} is taken now; session {run_id} is reached on port {port} instead")
            return port
    return free_local_port()


def _wait_listening(run_id: str, local_run_dir: Path, errors_from: int) -> None:
    """Until the forwarder just started listens (its pid file written); a one-line error at once when it
    exits first, with the last line it wrote to tunnel.err after `errors_from`."""
    deadline = time.monotonic() + TUNNEL_START
    while _tunnel_pid(local_run_dir) is None:
        said = _last_error(local_run_dir / TUNNEL_ERR, errors_from)
        if said is not None and not _tunnel_alive(local_run_dir):
            raise WorkbenchError(f"the forwarder of session {run_id} stopped: {said}",
                                 hint=f"its errors: {local_run_dir / TUNNEL_ERR}")
        if time.monotonic() >= deadline:
            raise WorkbenchError(f"the forwarder of session {run_id} did not listen within {TUNNEL_START:.0f} s",
                                 hint=f"its errors: {local_run_dir / TUNNEL_ERR}")
        time.sleep(0.2)


def _last_error(errors: Path, offset: int) -> str | None:
    """The last line written to `errors` after `offset`, its `workbench: error: ` cut off (None: nothing new)."""
    try:
        with errors.open("rb") as fh:
            fh.seek(offset)
            lines = [line.strip() for line in fh.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1].removeprefix("workbench: error: ") if lines else None


def _answers(port: int, token: str) -> bool:
    """Whether JupyterLab answers 200 on 127.0.0.1:port with the token, straight: never through a proxy the
    environment names (http.client consults none), which would get the token and never reach the port."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=READY_TRY)
    try:
        connection.request("GET", f"/api/status?token={token}")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False  # not listening yet, or starting up
    finally:
        connection.close()


def wait_ready(wb: Services, run: dict[str, Any], port: int, token: str, timeout: float = READY_TIMEOUT,
               forwarder: Path | None = None) -> None:
    """Until `GET /api/status` with the token answers 200 on the local port; a one-line error when the
    session ends first, or after `timeout` seconds. With `forwarder` (the local run dir of a session on an
    SSH host), at once when its forwarder is gone: the token is never sent to whatever else listens there."""
    executor, handle = wb.executors.for_run(run), Handle.from_record(run["handle"])
    deadline = time.monotonic() + timeout
    checked_at = time.monotonic()
    while True:
        if forwarder is not None and _tunnel_pid(forwarder) is None:
            said = _last_error(forwarder / TUNNEL_ERR, 0)
            raise WorkbenchError(f"the forwarder of session {run['id']} is gone" + (f": {said}" if said else ""),
                                 hint=f"start it again with `workbench notebook --attach {run['id']}`")
        if _answers(port, token):
            return
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
    if run["status"] in ("queued", "running"):  # still reachable through its forwarder, which stays
        raise WorkbenchError(f"session {run['id']} did not stop in time", hint="run `workbench sessions stop` again")
    stop_tunnel(wb.dirs.run_dir(run["id"]))
    try:
        said = bring_back(wb, run) or ("another process is still bringing its files back" if run.get("handle")
                                       else "it never started: nothing to bring back")
    except SSHError as exc:
        said = f"its files are not brought back yet ({exc.message}); they come back when {run['machine']} answers"
    except WorkbenchError as exc:  # some files could not be written here: the rest came back, these are said
        said = f"its files are not brought back yet: {exc.message} (`workbench sessions stop {run['id']}` tries again)"
    return {**run, "url": None, "token": None, "port": None, "brought_back": said}


def _session(wb: Services, ref: str) -> dict[str, Any]:
    run = wb.store.get_run(ref)
    if run.get("kind") != "session":
        raise WorkbenchError(f"run {run['id']} is not a session", hint=f"stop a run with `workbench runs cancel "
                                                                       f"{run['id']}`")
    return run


# the forwarder of a session on an SSH host --------------------------------------------------------------------
def _tunnel_alive(local_run_dir: Path) -> bool:
    """Whether a forwarder of this session runs: it holds tunnel.lock from its start to its end."""
    try:
        fd = os.open(local_run_dir / TUNNEL_LOCK, os.O_RDONLY)
    except OSError:
        return False  # never started here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _tunnel_pid(local_run_dir: Path) -> int | None:
    """The pid of this session's forwarder once it listens; None when none runs (a pid file a dead one left,
    whose pid may be anyone's now) or it does not listen yet."""
    try:
        pid = int((local_run_dir / TUNNEL_PID).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    ours = b"\0_tunnel\0" + local_run_dir.name.encode() + b"\0" in cmdline
    return pid if ours and _tunnel_alive(local_run_dir) else None


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
    lock = os.open(local / TUNNEL_LOCK, os.O_RDWR | os.O_CREAT, 0o600)  # held until this process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise WorkbenchError(f"session {run['id']} has a forwarder running already") from None
    port = read_session_file(local)["port"]
    if run["status"] != "running":
        raise WorkbenchError(f"session {run['id']} is not running; nothing to forward")
    remote_port = _remote_port(wb, run)
    listener = bind_local(port)
    (local / TUNNEL_PID).write_text(str(os.getpid()))  # listening: what connect waits for
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_watch_session, args=(wb, run["id"], stop), name="tunnel-watch", daemon=True).start()
    try:
        Tunnel(wb.executors.connection(run["machine"]), listener, LOOPBACK, remote_port).serve(stop)
    finally:
        os.close(lock)  # before the pid file goes: once it is gone, a new forwarder can start at once
        try:
            if int((local / TUNNEL_PID).read_text()) == os.getpid():
                (local / TUNNEL_PID).unlink()
        except (OSError, ValueError):
            pass


def _remote_port(wb: Services, run: dict[str, Any]) -> int:
    """The port the session's host's engine published its lab on, asked of the engine when the record lacks
    it (a session adopted from a launcher that died before recording it)."""
    handle = Handle.from_record(run["handle"] or {})
    port = handle.port
    if not port and handle.container:
        published = getattr(wb.executors.for_run(run), "published_port", None)
        port = published(handle.container, LAB_PORT) if published else None
    if not port:
        raise WorkbenchError(f"session {run['id']} publishes no port on {run['machine']}; nothing to forward",
                             hint=f"stop it with `workbench sessions stop {run['id']}` and open another")
    return port


def _watch_session(wb: Services, run_id: str, stop: threading.Event) -> None:
    """Sets `stop` once the session has ended, is gone from the history (`runs rm`), or cannot be looked at
    TUNNEL_WATCH_FAILURES times in a row."""
    failures = 0
    while not stop.wait(TUNNEL_WATCH):
        try:
            if wb.store.get_run(run_id)["status"] != "running":
                stop.set()
            failures = 0
        except NotFound:
            stop.set()
        except Exception as exc:  # noqa: BLE001 - the next look may answer
            failures += 1
            wb.progress(f"tunnel of session {run_id}: {first_line(exc)}")
            if failures >= TUNNEL_WATCH_FAILURES:
                wb.progress(f"tunnel of session {run_id}: its session cannot be looked at; stopping")
                stop.set()
