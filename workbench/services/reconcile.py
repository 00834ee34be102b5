"""Reconciliation: the record brought up to date with what the executors report (DESIGN.md principle 1). A run
whose launcher died after starting it is adopted by its labels; one that never started is lost; containers of
ours that no active run owns are removed. Also who owns a run's ingestion (its lease) and the ingestor itself,
which following a run (runs.py) shares."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from workbench.errors import EngineUnavailable, WorkbenchError
from workbench.execution.ingest import RunIngestor, lease_name
from workbench.failures import is_engine_failure
from workbench.services.context import Services, first_line
from workbench.store import Store
from workbench.store.ingest import LeaseLost


class Reconciler:
    """One per facade: when it last ran (for `if_stale`), and what it has already said (each problem once)."""

    def __init__(self, wb: Services) -> None:
        self.wb = wb
        self.reconciled_at = float("-inf")
        self.said: set[str] = set()

    def if_stale(self, max_age: float = 2.0) -> None:
        """For screens that refresh often: one reconcile per `max_age` seconds, however many ask."""
        if time.monotonic() - self.reconciled_at >= max_age:
            self.reconcile()

    def reconcile(self) -> list[dict[str, Any]]:
        """Brings every run recorded as active up to date with what its executor reports: a run whose
        launcher died after starting it is adopted by its labels; one that never started is lost."""
        self.reconciled_at = time.monotonic()
        changed = []
        engine_used = False
        for run in self.wb.store.active_runs():
            try:
                state = self._reconcile_one(run)
            except Exception as exc:  # noqa: BLE001 - one run that cannot be read never stops the others
                try:
                    self._note_failure(run["id"], exc)
                except Exception:  # noqa: BLE001 - not even its event could be written: the pass goes on
                    pass
                continue
            if state == "docker":
                engine_used = True
            elif state is not None:
                changed.append(run)
        if engine_used:
            try:
                remove_orphan_containers(self.wb)
            except Exception as exc:  # noqa: BLE001 - tidying up never fails a reconcile: said once
                self._say_once(f"leftover containers not removed: {first_line(exc)}")
        return changed

    def _reconcile_one(self, run: dict[str, Any]) -> str | None:
        """Brings one run up to date: its new final state, "docker" when it is still running there, or None."""
        wb = self.wb
        if lease_held(wb.store, run["id"]):
            return None  # someone is launching or following it live
        adopted = False
        try:
            if not run.get("handle"):
                found = adopt(wb, run)
                if found is None:
                    wb.store.finish_run(run["id"], "lost", exit_code=None,
                                        reason="its launch was interrupted before the run started")
                    return "lost"
                run, adopted = found, True
            run_ingestor = ingestor(wb, run)
        except EngineUnavailable as exc:
            self._say_once(f"{exc.message}; its runs are shown as last recorded")
            return None  # cannot tell; keep the record as it is
        if not run_ingestor.acquire():
            return None
        try:
            state = run_ingestor.catch_up()
        except LeaseLost:
            return None
        except Exception as exc:  # noqa: BLE001 - an engine gone mid-way leaves the record as it is
            if not is_engine_failure(exc):
                raise
            self._say_once(f"the Docker engine stopped answering ({first_line(exc)}); "
                           "its runs are shown as last recorded")
            return None
        finally:
            run_ingestor.release()
        if state.state != "running":
            return state.state
        if adopted:
            wb.follow_in_background(run["id"])  # its own follower died with its launcher
        return "docker" if run["executor"] == "docker" else None

    def _note_failure(self, run_id: str, exc: BaseException) -> None:
        """A run that could not be reconciled keeps its record; why is said once, as its event."""
        from workbench.failures import explain

        why = exc.message if isinstance(exc, WorkbenchError) else explain(exc) or first_line(exc)
        message = f"could not be brought up to date: {why}"
        events = self.wb.store.events(run_id)
        if not events or events[-1]["message"] != message:
            self.wb.store.add_event(run_id, "warning", message)
            self._say_once(f"run {run_id} {message}")

    def _say_once(self, message: str) -> None:
        if message not in self.said:
            self.said.add(message)
            self.wb.progress(message)


def ingestor(wb: Services, run: dict[str, Any]) -> RunIngestor:
    return RunIngestor(wb.store, wb.executors.for_run(run), run, wb.dirs.run_dir(run["id"]))


def adopt(wb: Services, run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's container (or process) found by its labels, recorded as running; None when it
    never started. EngineUnavailable when that cannot be told."""
    handle = wb.executors.for_run(run).adopt(run["id"], wb.dirs.run_dir(run["id"]))
    if handle is None:
        return None
    if wb.store.mark_running(run["id"], handle, time.time(), adopted=True):
        wb.store.add_event(run["id"], "adopted", "its launcher stopped before recording the start; "
                                                 "found by its labels and followed from here")
    return wb.store.get_run(run["id"])


def lease_held(store: Store, run_id: str) -> bool:
    """Someone is launching or following the run: its lease is current and, when its holder is a
    process on this machine, that process is alive (the lease of a launcher or follower killed with -9
    is released here, so the run is taken over at once rather than when the lease lapses)."""
    owner = store.lease_holder(lease_name(run_id))
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            store.release_lease(lease_name(run_id), owner)  # only if still that dead owner's
            return False
        except PermissionError:
            pass
    return True


def remove_orphan_containers(wb: Services) -> int:
    from workbench.execution.docker_executor import DockerExecutor

    executor = wb.executors.get("local", "docker")
    assert isinstance(executor, DockerExecutor)
    found = executor.list({"workbench.instance": wb.store.instance, "workbench.kind": "run"})
    active = {run["id"] for run in wb.store.active_runs()}  # read after the listing: see DockerExecutor
    return executor.remove_orphans(found, active)
