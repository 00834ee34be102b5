"""The runtime every run finds on its PYTHONPATH: workbench/runtime/ (the notebook runner, `workbench_log`),
shipped with the package and never imported by it. It is copied once into <dir>/lib/<content key>/ (a new
Workbench version gets a new folder): here <dir> is the data dir (snap Docker and Docker Desktop cannot bind-mount
the installed package's folder), on an SSH host the Workbench dir there; in a container it is mounted
read-only at CONTAINER_PATH."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.execution.hosts import PRIVATE_DIR, PRIVATE_FILE
from workbench.execution.scripts import q

SOURCE = Path(__file__).resolve().parent.parent / "runtime"
CONTAINER_PATH = "/wb/lib"


@lru_cache(maxsize=1)
def runtime_files() -> tuple[tuple[str, bytes], ...]:
    return tuple((p.name, p.read_bytes()) for p in sorted(SOURCE.glob("*.py")))


def runtime_key() -> str:
    digest = hashlib.sha256()
    for name, data in runtime_files():
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]


def runtime_dir(host: Any) -> str:
    """The runtime's folder on the host's file system (sent there first if it lacks this version's)."""
    if not host.remote:
        return local_runtime_dir(host.runs_root)
    path = posixpath.join(host.root, "lib", runtime_key())
    if not host.is_dir(path):
        host.make_dirs(posixpath.dirname(path))
        host.put_tree(path, dict(runtime_files()))
    return path


def local_runtime_dir(runs_root: Path | None) -> str:
    """The runtime's copy in this workstation's data dir (the parent of its runs/), written there first if
    missing: beside it, then renamed into place (a launch racing this one keeps whichever landed first)."""
    if runs_root is None:
        return str(SOURCE)
    path = Path(runs_root).parent / "lib" / runtime_key()
    if path.is_dir():
        return str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.tmp-", dir=path.parent))
        try:
            for name, data in runtime_files():
                (tmp / name).write_bytes(data)
                (tmp / name).chmod(PRIVATE_FILE)
            tmp.chmod(PRIVATE_DIR)  # as everything Workbench keeps: its runs use the user's uid
            try:
                os.rename(tmp, path)
            except OSError:
                if not path.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as err:
        raise WorkbenchError(f"cannot write the run runtime into {path.parent}: {err.strerror or err}") from None
    return str(path)


def on_path_line(where: str | None) -> str:
    """An sh line putting the runtime first on PYTHONPATH at exec time, before whatever PYTHONPATH the shell
    has then: the experiment's own (its env), else the login's (~/.bashrc, sshd, pam_env) or a setup line's."""
    if not where:
        return ""
    return f'export PYTHONPATH={q(where)}"${{PYTHONPATH:+:$PYTHONPATH}}"\n'


def with_runtime(env: dict[str, str], where: str | None, inherited: str | None = None) -> dict[str, str]:
    """`env` with the runtime first on PYTHONPATH, before the experiment's own PYTHONPATH (its env), else
    before the one the run would inherit (an image's, the workstation's)."""
    if not where:
        return env
    rest = env.get("PYTHONPATH") or inherited
    return {**env, "PYTHONPATH": f"{where}:{rest}" if rest else where}
