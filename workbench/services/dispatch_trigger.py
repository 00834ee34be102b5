"""The dispatcher's trigger: what launching, sweeps and the reconciler call when a run is queued, kept apart from
the dispatcher (services/dispatch.py), which launches runs itself."""

from __future__ import annotations

from workbench.services.context import Services, start_detached

LEASE = "dispatcher"  # held by the one dispatcher at work


def ensure_dispatcher(wb: Services) -> None:
    """A detached dispatcher, unless one is at work (holds the lease) or nothing waits. The lease of one that
    was killed (its process is gone) is freed here: it is replaced now, not when its lease lapses."""
    if wb.store.live_lease_holder(LEASE) or not (wb.store.has_waiting() or wb.store.has_running_sweeps()):
        return
    start_detached(wb, ["_dispatch"], wb.dirs.data / "dispatcher.err")
