"""What makes a run a JupyterLab session at launch: its experiment (the project experiment's image and
resources, JupyterLab as its command), its token and local port (kept in the local run dir's session.json,
mode 0600, never in the history), the lab image, and its writable working copy with the lab's port published.
The use cases (open, attach, list, stop) are in sessions.py; launch.py calls this module."""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import secrets
import shlex
import shutil
import socket
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.projects.spec import Experiment
from workbench.services.context import Services
from workbench.services.images import runner_image

LAB_PORT = 8888  # inside the container
WORKDIR = "/wb/src"
# --allow-root: the container runs as the login user's uid, which may be root's (JupyterLab refuses it otherwise)
LAB_COMMAND = ["jupyter", "lab", "--ip=0.0.0.0", f"--port={LAB_PORT}", "--no-browser",
               f"--ServerApp.root_dir={WORKDIR}", "--allow-root"]
# The container runs as the login user's uid, which has no home in the image: one in the container's own
# layer, private to the run and gone with the container. Not under /wb/out: what lands there (pip, Jupyter and
# kernel caches) would be hashed and fetched as the run's artifacts when it stops.
LAB_HOME = "/tmp/home"
SESSION_FILE = "session.json"
TOKEN_ENV = "JUPYTER_TOKEN"  # jupyter_server reads it; the history redacts any *TOKEN* name anyway
LOOPBACK = "127.0.0.1"


def session_experiment(exp: Experiment, gpus: int | None = None) -> Experiment:
    """The project experiment as a session runs it: its image, env, mounts and resources, JupyterLab as the
    command, and nothing a run of it would execute or check."""
    return dataclasses.replace(exp, command=list(LAB_COMMAND), notebook=None, params={}, artifacts=[], checks=[],
                               sweep={}, sweep_options={}, setup=None, gpus=exp.gpus if gpus is None else gpus)


def docker_needed(machine: str) -> str:
    return f"sessions need Docker on the machine: {machine} runs no containers Workbench uses"


def lab_image(wb: Services, base: str, *, machine: str, run_id: str) -> str:
    """The experiment's image with JupyterLab in it (added once in a thin layer, cached by base image id)."""
    return runner_image(wb, base, machine=machine, run_id=run_id, packages=("jupyterlab",),
                        probe="import jupyterlab", purpose="lab")


def new_session_file(local_run_dir: Path, port: int | None) -> dict[str, Any]:
    """A fresh token (48 hex) and the local port asked for (None: a free one, chosen at launch), written to
    the run's local session.json, readable by this user alone."""
    session = {"token": secrets.token_hex(24), "port": port}
    local_run_dir.mkdir(parents=True, exist_ok=True)
    _write(local_run_dir / SESSION_FILE, session, exclusive=True)
    return session


def read_session_file(local_run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((local_run_dir / SESSION_FILE).read_text())
    except (OSError, ValueError):
        raise WorkbenchError(f"the session's token is gone from {local_run_dir / SESSION_FILE}",
                             hint="stop it with `workbench sessions stop ID` and open another") from None


def save_port(local_run_dir: Path, port: int) -> dict[str, Any]:
    session = {**read_session_file(local_run_dir), "port": port}
    _write(local_run_dir / SESSION_FILE, session, exclusive=False)
    return session


def _write(path: Path, session: dict[str, Any], exclusive: bool) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(session, fh)
    if exclusive and path.exists():
        tmp.unlink()
        raise WorkbenchError(f"{path} exists already; not overwritten")
    os.replace(tmp, path)


def check_local_port(port: int) -> None:
    """A one-line error now when `port` cannot be listened on at 127.0.0.1 here."""
    if not 1 <= port <= 65535:
        raise WorkbenchError(f"--port {port} is not a TCP port", hint="use a port from 1 to 65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as Docker and the forwarder bind: a port whose last connections are in TIME_WAIT is free to them
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError as err:
            raise WorkbenchError(f"port {port} on this machine is already in use ({err.strerror or err})",
                                 hint="pick another with --port, or leave it out for a free one") from None


def free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _copy_whole(host: Any, src: str, dest: str) -> None:
    """`src` copied to `dest` under a name of its own first, renamed into place once complete: a launcher
    killed mid-copy leaves no partial `dest` for the next launch to take as the working copy. The copies
    left by killed launchers are removed first."""
    parent, name = posixpath.split(dest)
    tmp = posixpath.join(parent, f"{name}.tmp-{os.getpid()}")
    if host.remote:
        pattern = shlex.quote(posixpath.join(parent, name + ".tmp-")) + "*"
        host.sh(f"chmod -R u+w {pattern} 2>/dev/null; rm -rf {pattern}", what=f"removing partial copies of {name}")
        host.copy_tree(src, tmp)
        host.sh(f"mv {shlex.quote(tmp)} {shlex.quote(dest)}", what=f"moving the copy into {dest}")
        return
    for stale in Path(parent).glob(f"{name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        host.copy_tree(src, tmp)
    except WorkbenchError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.rename(tmp, dest)


def prepare_session(local_run_dir: Path, host: Any, run_dir: str, snapshot_where: str,
                    env: dict[str, str]) -> tuple[str, tuple[str, int, int]]:
    """The session's working copy (the snapshot copied into `<run dir>/work` on its host, writable; kept
    when there already: it only ever appears complete), its token and home in `env`, and what to publish: the lab's port on the engine's
    host's loopback, on the local port here, on one the engine picks on an SSH host (reached by a tunnel).
    Returns (working dir, publish)."""
    work = posixpath.join(run_dir, "work")
    host.make_dirs(run_dir)
    copied = host.is_dir(work) if host.remote else Path(work).is_dir()  # (a launch taken over after a crash)
    if not copied:
        _copy_whole(host, snapshot_where, work)
    session = read_session_file(local_run_dir)
    env.update({TOKEN_ENV: session["token"], "HOME": LAB_HOME})
    if host.remote:
        return work, (LOOPBACK, LAB_PORT, 0)
    port = session.get("port") or save_port(local_run_dir, free_local_port())["port"]
    return work, (LOOPBACK, LAB_PORT, port)
