"""RunNotes on the store: where a backend that watches a scheduler (Slurm) records what it sees of runs (events,
a pending run's reason, the GPUs it was given, a cancel from outside Workbench) and shares the scheduler's
last answer and its poll lease with every other Workbench process."""

from __future__ import annotations

from typing import Any

from workbench.errors import WorkbenchError
from workbench.store import Store
from workbench.store.leases import new_owner


class StoreRunNotes:
    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, run_id: str) -> dict[str, Any] | None:
        try:
            return self.store.get_run(run_id)
        except WorkbenchError:  # none by that id (a job of another Workbench, a run deleted since)
            return None

    def active_jobs(self, machine: str) -> dict[str, str]:
        return {str((r.get("handle") or {}).get("job")): r["id"] for r in self.store.active_runs()
                if r.get("machine") == machine}

    def event(self, run_id: str, kind: str, message: str) -> None:
        self.store.add_event(run_id, kind, message)

    def events(self, run_id: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.store.events(run_id) if e["kind"] == kind]

    def set_status_reason(self, run_id: str, reason: str | None) -> None:
        self.store.update_run(run_id, status_reason=reason)

    def set_gpus(self, run_id: str, gpus: list[str]) -> None:
        self.store.update_run(run_id, gpu_uuids=gpus)

    def set_cancel_requested(self, run_id: str) -> None:
        self.store.update_run(run_id, cancel_requested=1)

    def last_poll(self, machine: str) -> tuple[float, dict[str, dict[str, str]]] | None:
        found = self.store.slurm_poll(machine)
        return (found[0], found[1]) if found is not None else None

    def save_poll(self, machine: str, jobs: dict[str, dict[str, str]], polled_at: float) -> None:
        self.store.save_slurm_poll(machine, jobs, polled_at)

    def take_poll_lease(self, machine: str, ttl: float) -> str | None:
        owner, lease = new_owner(), _poll_lease(machine)
        if self.store.acquire_lease(lease, owner, ttl):
            return owner
        if self.store.live_lease_holder(lease) is not None:
            return None  # another process is asking now (one that died asking has it freed: a CLI that exited mid-poll)
        return owner if self.store.acquire_lease(lease, owner, ttl) else None

    def release_poll_lease(self, machine: str, owner: str) -> None:
        self.store.release_lease(_poll_lease(machine), owner)


def _poll_lease(machine: str) -> str:
    return f"slurm-poll:{machine}"
