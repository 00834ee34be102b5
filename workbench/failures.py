"""Environmental failures said in one line with the fix: a full disk, a read-only or damaged data dir, an
engine that stopped answering. Used where an unexpected exception would otherwise reach the user."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from workbench.errors import EngineUnavailable


def is_engine_failure(exc: BaseException) -> bool:
    """The engine stopped answering (killed, restarting, frozen) rather than refusing a request."""
    if isinstance(exc, EngineUnavailable):
        return True
    module = type(exc).__module__
    return module.startswith(("requests", "urllib3")) or isinstance(exc, (ConnectionError, TimeoutError))


def explain(exc: BaseException, data_dir: Path | None = None) -> str | None:
    """One line (what, where, how to fix) for a failure a user can act on; None for a real bug."""
    where = str(data_dir) if data_dir else "the data dir"
    db = f"{data_dir}/workbench.db" if data_dir else "the database"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, sqlite3.DatabaseError):
        if "full" in lowered or ("disk i/o" in lowered and _nearly_full(data_dir)):
            return _disk_full(where)
        if "readonly" in lowered or "read-only" in lowered or _on_read_only_fs(data_dir):
            return _read_only(where)
        if "unable to open" in lowered:
            return f"cannot open {db} ({text}): check that {where} exists and that you may write to it"
        if "not a database" in lowered:
            return (f"{db} is not a usable Workbench database ({text}): move it aside to start a new history, "
                    "or put a backup in its place")
        if "malformed" in lowered or "corrupt" in lowered:
            return (f"the database {db} is damaged ({text}); "
                    f"keep a copy, then recover it: sqlite3 {db} .recover | sqlite3 recovered.db, and move "
                    "recovered.db in its place")
        if "disk i/o" in lowered:
            return f"reading or writing {db} failed ({text}): check the disk (dmesg) and free space"
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        target = exc.filename or where
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _disk_full(str(target))
        if exc.errno == errno.EROFS:
            return _read_only(str(target))
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied: {target} (fix its owner or mode, or set WORKBENCH_HOME to a folder you own)"
    if is_engine_failure(exc):
        return (f"the Docker engine stopped answering ({text[:160]}); check that dockerd runs "
                "(`workbench doctor`), then try again")
    return None


def _disk_full(where: str) -> str:
    return (f"no space left on the device holding {where}; free some (`workbench gc`, `docker system prune`) "
            "and try again: what is already recorded is kept")


def _read_only(where: str) -> str:
    return (f"cannot write to {where}: it is read-only; remount it writable or set WORKBENCH_HOME to a "
            "writable folder")


def _on_read_only_fs(path: Path | None) -> bool:
    try:
        return path is not None and bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _nearly_full(path: Path | None) -> bool:
    """SQLite reports a WAL that cannot grow as a disk I/O error: tell a full disk from a failing one."""
    try:
        st = os.statvfs(path) if path is not None else None
    except OSError:
        return False
    return st is not None and st.f_bavail * st.f_frsize < (1 << 20)
