"""A session's changed files brought back into its project folder once its container has stopped: its working
copy (`<run dir>/work` on its host) against the snapshot it started from (projects/session_sync.py does the
writing). Done once: recorded as the run's event "brought-back"; by `sessions stop`, else by whoever finalises
the run (its follower), when the host answers."""

from __future__ import annotations

import posixpath
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from workbench.errors import NotFound, WorkbenchError
from workbench.execution.base import Handle
from workbench.projects.session_sync import plan_and_apply
from workbench.projects.snapshot import snapshot_manifest
from workbench.services.context import Services
from workbench.store.leases import LeaseKeeper, new_owner

BROUGHT_BACK = "brought-back"
PARTLY_BROUGHT_BACK = "warning"  # some files came back, others not yet: said, and tried again later
# One process brings a session's files back at a time; renewed while it does, so a holder that died is
# replaced within a minute however long the copying takes.
LEASE_TTL = 60.0
LEASE_RENEW = 10.0
WAIT_FOR_OTHER = 300.0


def brought_back(wb: Services, run_id: str) -> str | None:
    """What bringing the session's files back said, when it was done."""
    done = [e for e in wb.store.events(run_id) if e["kind"] == BROUGHT_BACK]
    return done[0]["message"] if done else None


def bring_back_lease(run_id: str) -> str:
    return f"bring-back:{run_id}"


def work_copy(run: dict[str, Any]) -> str:
    """`machine:path` of the session's working copy on its host."""
    return f"{run.get('machine') or 'local'}:{posixpath.join(Handle.from_record(run['handle']).run_dir, 'work')}"


def bring_back(wb: Services, run: dict[str, Any], wait: float = WAIT_FOR_OTHER) -> str | None:
    """Brings an ended session's new and changed files into its project; one line saying what it did (the
    line recorded before, when it was done already, by this process or another, waited for up to `wait`
    seconds; None when the session never got a working copy, was removed meanwhile, or the other process is
    not done by then). Some files that could not be brought back: WorkbenchError naming them and the working
    copy (what did come back is recorded as a warning; a later call brings the rest)."""
    said = brought_back(wb, run["id"])
    if said is not None or not run.get("snapshot") or not run.get("handle"):
        return said
    with bringing_back(wb, run["id"], wait) as held:
        return bring_back_held(wb, run) if held else brought_back(wb, run["id"])


@contextmanager
def bringing_back(wb: Services, run_id: str, wait: float = WAIT_FOR_OTHER) -> Iterator[bool]:
    """Holds the session's bring-back lease (renewed meanwhile) for the block: True; False when another
    process still held it after `wait` seconds, or recorded the files brought back meanwhile."""
    lease, owner = bring_back_lease(run_id), new_owner()
    deadline = time.monotonic() + wait
    while not wb.store.acquire_lease(lease, owner, LEASE_TTL):  # another process brings them back now
        if brought_back(wb, run_id) is not None or time.monotonic() >= deadline:
            yield False
            return
        time.sleep(0.2)
    keeper = LeaseKeeper(wb.store, lease, owner, LEASE_TTL, LEASE_RENEW)
    try:
        yield True
    finally:
        keeper.stop()
        wb.store.release_lease(lease, owner)


def bring_back_held(wb: Services, run: dict[str, Any]) -> str | None:
    """bring_back's work, by the holder of the run's bring-back lease."""
    if not run.get("snapshot") or not run.get("handle"):
        return None  # it never got a working copy
    try:
        wb.store.get_run(run["id"])
    except NotFound:  # removed (`runs rm`) while we waited for the lease
        return None
    said = brought_back(wb, run["id"])  # another process finished meanwhile
    if said is not None:
        return said
    host = wb.executors.for_run(run).host
    work = posixpath.join(Handle.from_record(run["handle"]).run_dir, "work")
    manifest = [e for e in snapshot_manifest(wb.dirs.snapshots, run["snapshot"]) if e.kind == "f"]
    started = {e.rel: e.data for e in manifest}
    unreadable: list[str] = []
    now = {rel: sha for rel, _, sha, link in host.list_outputs(work, unreadable, whole=True) if link is None}
    result = plan_and_apply(Path(run["project_path"]), started, now,
                            lambda rel, dest: host.fetch(posixpath.join(work, rel), dest), run["id"],
                            executable=frozenset(e.rel for e in manifest if e.mode & 0o111),
                            unreadable=unreadable)
    said = result.summary()
    if result.failed:
        wb.store.add_event(run["id"], PARTLY_BROUGHT_BACK, f"its files are partly brought back: {said}")
        raise WorkbenchError(f"could not bring back {result.failures()}; they are still in the session's working "
                             f"copy {work_copy(run)}")
    wb.store.add_event(run["id"], BROUGHT_BACK, said)
    return said
