"""Every lease: a named row of `leases` that one owner holds until it lapses unrenewed. A run's ingestion
(`ingest:<run id>`, also held by its launcher), the dispatcher, the deployment watcher, a deployment's
operation and the Slurm queue's poll each take one, so one process at a time does that work, and a holder
that died is replaced within seconds (or at once, when it was a process on this machine: `owner_gone`)."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass

LEASE_TTL = 15.0  # seconds, an ingestion lease; WORKBENCH_LEASE_TTL overrides it (tests, or a slow shared file system)


def lease_ttl() -> float:
    """How long an ingestion lease lasts unrenewed: how soon a dead follower's run is taken over."""
    try:
        return max(1.0, float(os.environ.get("WORKBENCH_LEASE_TTL", LEASE_TTL)))
    except ValueError:
        return LEASE_TTL


def lease_name(run_id: str) -> str:
    """The lease of a run's ingestion (and of its launch, until it is followed)."""
    return f"ingest:{run_id}"


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_pid(owner: str) -> int | None:
    """The pid in new_owner's form, when the holder is a process on this machine."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def owner_gone(owner: str) -> bool:
    """The holder named by `owner` (new_owner's form) was a process on this machine that no longer
    exists: killed with -9, or a CLI that exited while a daemon thread held the lease."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A process that was killed but not yet reaped still answers kill(pid, 0): where no init reaps orphans
    (a container's PID 1), a follower killed with -9 would hold its run's lease as a zombie until it lapsed."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


class LeaseLost(Exception):
    """This process no longer owns the run's ingestion: another took over; stop writing."""


@dataclass(frozen=True)
class Lease:
    name: str
    owner: str
    ttl: float


def hold(conn: sqlite3.Connection, lease: Lease | None) -> None:
    """Inside a write transaction: proves we still own the lease and renews it, or raises LeaseLost."""
    if lease is None:
        return
    renewed = conn.execute(
        "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ?",
        (time.time() + lease.ttl, lease.name, lease.owner),
    ).rowcount
    if not renewed:
        raise LeaseLost(lease.name)


class LeaseQueries:
    conn: sqlite3.Connection

    def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Takes the lease if free, expired, or already ours; renews it in that case."""
        now = time.time()
        with self.tx() as conn:  # type: ignore[attr-defined]
            row = conn.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
            if row and row[0] != owner and row[1] > now:
                return False
            conn.execute(
                "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
                (name, owner, now + ttl),
            )
            return True

    def release_lease(self, name: str, owner: str) -> None:
        with self.tx() as conn:  # type: ignore[attr-defined]
            conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    def lease_holder(self, name: str) -> str | None:
        rows = self.query("SELECT owner FROM leases WHERE name = ? AND expires_at > ?", (name, time.time()))  # type: ignore[attr-defined]
        return rows[0][0] if rows else None

    def live_lease_holder(self, name: str) -> str | None:
        """Who holds `name`; a holder that was a process here and is gone (killed) has it freed first, so it
        is replaced now rather than when its lease lapses."""
        holder = self.lease_holder(name)
        if holder and owner_gone(holder):
            self.release_lease(name, holder)  # only if still that dead owner's
            return None
        return holder


class LeaseKeeper:
    """Renews `name`, or each of a list of names (which may grow while it runs: a group launch adds runs),
    from a thread while slow work (a build, a pull) runs, so the lease can be short: when the holder dies,
    others may take over within seconds rather than hours."""

    def __init__(self, store: LeaseQueries, name: str | list[str], owner: str, ttl: float, every: float) -> None:
        self.store, self.owner, self.ttl, self.every = store, owner, ttl, every
        self.names = [name] if isinstance(name, str) else name
        self._stop = threading.Event()
        self.lost = threading.Event()  # another owner holds it now (ours expired while we were stuck)
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.names[0] if self.names else 'group'}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.every):
            for name in list(self.names):
                try:
                    if not self.store.acquire_lease(name, self.owner, self.ttl):
                        self.lost.set()
                except Exception:  # noqa: BLE001 - a busy or failing database: the next tick tries again
                    pass

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=self.every + 1)
