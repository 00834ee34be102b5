"""Environmental failures said in one line with the fix: a full disk, a read-only or damaged data dir, an
engine that stopped answering. Used where an unexpected exception would otherwise reach the user."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path


def explain(exc: BaseException, data_dir: Path | None = None) -> str | None:
    """One line (what, where, how to fix) for a failure a user can act on; None for a real bug."""
    where = str(data_dir) if data_dir else "the data dir"
    db = f"{data_dir}/workbench.db" if data_dir else "the database"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, sqlite3.DatabaseError):
        if "full" in lowered:
            return _disk_full(where)
        if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
            return _read_only(where)
        if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
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
    from workbench.execution.engine import is_engine_failure

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
