"""A session's changed files brought back into its project folder once its container has stopped: its working
copy (`<run dir>/work` on its host) against the snapshot it started from (projects/session_sync.py does the
writing). Done once: recorded as the run's event "brought-back"; by `sessions stop`, else by whoever finalises
the run (its follower), when the host answers."""

from __future__ import annotations

import posixpath
import time
from pathlib import Path
from typing import Any

from workbench.execution.base import Handle
from workbench.projects.session_sync import plan_and_apply
from workbench.projects.snapshot import snapshot_manifest
from workbench.services.context import Services
from workbench.store.leases import new_owner

BROUGHT_BACK = "brought-back"
LEASE_TTL = 600.0  # one process brings a session's files back at a time
WAIT_FOR_OTHER = 300.0


def brought_back(wb: Services, run_id: str) -> str | None:
    """What bringing the session's files back said, when it was done."""
    done = [e for e in wb.store.events(run_id) if e["kind"] == BROUGHT_BACK]
    return done[0]["message"] if done else None


def bring_back(wb: Services, run: dict[str, Any], wait: float = WAIT_FOR_OTHER) -> str | None:
    """Brings an ended session's new and changed files into its project; one line saying what it did (the
    line recorded before, when it was done already, by this process or another, waited for up to `wait`
    seconds; None when the session never got a working copy, or the other process is not done by then)."""
    said = brought_back(wb, run["id"])
    if said is not None or not run.get("snapshot") or not run.get("handle"):
        return said
    lease, owner = f"bring-back:{run['id']}", new_owner()
    deadline = time.monotonic() + wait
    while not wb.store.acquire_lease(lease, owner, LEASE_TTL):  # another process brings them back now
        said = brought_back(wb, run["id"])
        if said is not None or time.monotonic() >= deadline:
            return said
        time.sleep(0.2)
    try:
        said = brought_back(wb, run["id"])  # another process finished meanwhile
        if said is not None:
            return said
        host = wb.executors.for_run(run).host
        work = posixpath.join(Handle.from_record(run["handle"]).run_dir, "work")
        started = {e.rel: e.data for e in snapshot_manifest(wb.dirs.snapshots, run["snapshot"]) if e.kind == "f"}
        now = {rel: sha for rel, _, sha, link in host.list_outputs(work) if link is None}
        result = plan_and_apply(Path(run["project_path"]), started, now,
                                lambda rel, dest: host.fetch(posixpath.join(work, rel), dest), run["id"])
        said = result.summary()
        wb.store.add_event(run["id"], BROUGHT_BACK, said)
        return said
    finally:
        wb.store.release_lease(lease, owner)
