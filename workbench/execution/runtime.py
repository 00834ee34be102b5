"""The runtime every run finds on its PYTHONPATH: workbench/runtime/ (the notebook runner, `workbench_log`),
shipped with the package and never imported by it. Here it is used where it is installed; on an SSH host it is
copied once into <Workbench dir>/lib/<content key>/ (a new Workbench version gets a new folder); in a container
it is mounted read-only at CONTAINER_PATH."""

from __future__ import annotations

import hashlib
import posixpath
from functools import lru_cache
from pathlib import Path
from typing import Any

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
        return str(SOURCE)
    path = posixpath.join(host.root, "lib", runtime_key())
    if not host.is_dir(path):
        host.make_dirs(posixpath.dirname(path))
        host.put_tree(path, dict(runtime_files()))
    return path


def with_runtime(env: dict[str, str], where: str | None, inherited: str | None = None) -> dict[str, str]:
    """`env` with the runtime first on PYTHONPATH, before the experiment's own PYTHONPATH (its env), else
    before the one the run would inherit (an image's, the workstation's)."""
    if not where:
        return env
    rest = env.get("PYTHONPATH") or inherited
    return {**env, "PYTHONPATH": f"{where}:{rest}" if rest else where}
