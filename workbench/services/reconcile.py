"""Reconciliation: the record brought up to date with what the executors report (docs/architecture.md, Reconciliation). A run
whose launcher died after starting it is adopted by its labels; one that never started is lost; containers of
ours that no active run owns are removed. Also who owns a run's ingestion (its lease) and the ingestor itself,
which following a run (runs.py) shares."""

from __future__ import annotations

import threading
import time
from typing import Any

from workbench.errors import EngineUnavailable, WorkbenchError
from workbench.execution.backends import BACKENDS
from workbench.execution.base import Adopts, RunsInImage
from workbench.execution.ingest import RunIngestor
from workbench.failures import is_engine_failure
from workbench.services.deploy_watch import ensure_watcher
from workbench.services.dispatch_trigger import ensure_dispatcher
from workbench.services.context import Services, first_line
from workbench.store import Store
from workbench.store.leases import LeaseLost, lease_name, owner_gone

IN_ENGINE = "in engine"  # a run still running in a container: the pass then removes orphaned containers
REMOTE_WAIT = 1.0  # seconds a pass waits for SSH hosts before it returns (their passes go on meanwhile)
UNREACHABLE_RETRY = 10.0  # a host that did not answer is asked again after this long
UNREACHABLE = "host unreachable"
FOLLOWER_RESTART = 30.0  # seconds before one process starts another follower for the same run


class Reconciler:
    """One per facade (made on its core.Core): when it last ran (for `if_stale`), and what it has already said
    (each problem once)."""

    def __init__(self, wb: Services) -> None:
        self.wb = wb
        self.reconciled_at = float("-inf")
        self.said: set[str] = set()
        self.closed = False  # the facade closed: passes still waiting for a host drop their answer quietly
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # hosts whose pass is still running (waiting for an answer)
        self._retry_at: dict[str, float] = {}  # hosts that did not answer: not asked again before then
        self._follower_started: dict[str, float] = {}  # run id -> when this process last started one for it

    def close(self) -> bool:
        """Before the store closes: a host's pass still in flight stops at its next run and says nothing more.
        True when none is in flight (the store may close now); else one still uses the store."""
        self.closed = True
        with self._lock:
            return not self._busy

    def if_stale(self, max_age: float = 2.0) -> None:
        """For screens that refresh often: one reconcile per `max_age` seconds, however many ask."""
        if time.monotonic() - self.reconciled_at >= max_age:
            self.reconcile()

    def reconcile(self, wait: float | None = None) -> list[dict[str, Any]]:
        """Brings every run recorded as active up to date with what its executor reports: a run whose
        launcher died after starting it is adopted by its labels; one that never started is lost.

        Machine by machine, each SSH host on a thread of its own: a host that does not answer delays nothing
        else (its pass goes on in the background; the next pass skips it while it is still busy), and its
        runs stay as they were, marked unreachable, until it answers again."""
        self.reconciled_at = time.monotonic()
        by_machine: dict[str, list[dict[str, Any]]] = {}
        for run in self.wb.store.active_runs(waiting=False):  # runs still in the queue are the dispatcher's
            by_machine.setdefault(run.get("machine") or "local", []).append(run)
        if self.wb.store.has_waiting() or self.wb.store.has_running_sweeps():
            try:
                ensure_dispatcher(self.wb)  # after a reboot, or a dispatcher that was killed
            except Exception as exc:  # noqa: BLE001 - said, never fatal to a reconcile
                self._say_once(f"the dispatcher could not be started: {first_line(exc)}")
        if self.wb.store.has_detached_followers():
            try:
                from workbench.services.ci_follow import ensure_followers  # lazily: most starts follow no branch

                for note in ensure_followers(self.wb):  # after a reboot, or a follower that was killed
                    self._say_once(note)
            except Exception as exc:  # noqa: BLE001 - said, never fatal to a reconcile
                self._say_once(f"a branch follower could not be started: {first_line(exc)}")
        if self.wb.store.has_watched_deployments():
            try:
                for note in ensure_watcher(self.wb):  # after a reboot, or once the workstation wakes
                    self._say_once(note)
            except Exception as exc:  # noqa: BLE001 - said, never fatal to a reconcile
                self._say_once(f"the deployment watcher could not be started: {first_line(exc)}")
        changed: list[dict[str, Any]] = []
        waiting = []
        for machine, runs in by_machine.items():
            if machine == "local":
                changed += self._reconcile_machine(machine, runs)
                continue
            runs = [run for run in runs if not lease_held(self.wb.store, run["id"])]
            if not runs:
                continue  # each is followed live (its follower says when the host does not answer)
            with self._lock:
                if machine in self._busy:
                    continue  # its previous pass is still waiting for the host
                if time.monotonic() < self._retry_at.get(machine, 0.0):
                    continue  # it did not answer a moment ago: not every pass waits for it again
                self._busy.add(machine)
            done, listening = threading.Event(), threading.Event()
            box: list[list[dict[str, Any]]] = []
            threading.Thread(target=self._remote_pass, args=(machine, runs, box, done, listening), daemon=True,
                             name=f"reconcile-{machine}").start()
            if not all((run.get("status_reason") or "").startswith(UNREACHABLE) for run in runs):
                listening.set()
                waiting.append((done, box, listening))  # a host already known silent is asked, not waited for
        deadline = time.monotonic() + (REMOTE_WAIT if wait is None else wait)
        for done, box, listening in waiting:
            if done.wait(max(0.0, deadline - time.monotonic())) and box:
                changed += box[0]
            listening.clear()  # what the pass finds from now on is recorded, not said in another command's output
        return changed

    def _remote_pass(self, machine: str, runs: list[dict[str, Any]], box: list, done: threading.Event,
                     listening: threading.Event) -> None:
        try:
            box.append(self._reconcile_machine(machine, runs, listening))
        except Exception as exc:  # noqa: BLE001 - a thread of its own: its failure is said, never a traceback
            if not self.closed:
                self._say_once(f"{machine}: its runs were not brought up to date ({first_line(exc)})")
        finally:
            with self._lock:
                self._busy.discard(machine)
            done.set()

    def _reconcile_machine(self, machine: str, runs: list[dict[str, Any]],
                           listening: threading.Event | None = None) -> list[dict[str, Any]]:
        from workbench.machines.ssh import SSHError

        changed = []
        engine_used = False
        for run in runs:
            if self.closed:
                return changed
            try:
                state = self._reconcile_one(run)
            except SSHError as exc:
                if not self.closed:
                    self._unreachable(machine, runs, exc, say=listening is None or listening.is_set())
                return changed
            except Exception as exc:  # noqa: BLE001 - one run that cannot be read never stops the others
                try:
                    self._note_failure(run["id"], exc)
                except Exception:  # noqa: BLE001 - not even its event could be written: the pass goes on
                    pass
                continue
            if state == IN_ENGINE:
                engine_used = True
            elif state is not None:
                changed.append(run)
        if machine != "local":
            self._reachable(machine, runs)
        if engine_used:
            try:
                remove_orphan_containers(self.wb, machine)
            except Exception as exc:  # noqa: BLE001 - tidying up never fails a reconcile: said once
                self._say_once(f"leftover containers not removed: {first_line(exc)}")
        return changed

    def _unreachable(self, machine: str, runs: list[dict[str, Any]], exc: Exception, say: bool = True) -> None:
        """Recorded on its runs ("host unreachable since T"); said only while the look that asked still waits
        for the answer (a late one would land in the middle of another command's output)."""
        with self._lock:
            self._retry_at[machine] = time.monotonic() + UNREACHABLE_RETRY
        mark_unreachable(self.wb, machine, runs, exc)
        if say:
            self._say_once(f"{machine} does not answer ({first_line(exc)}); its runs are shown as last recorded")

    def _reachable(self, machine: str, runs: list[dict[str, Any]]) -> None:
        with self._lock:
            self._retry_at.pop(machine, None)
        mark_reachable(self.wb, machine, runs)
        self.said = {m for m in self.said if not m.startswith(f"{machine} does not answer")}

    def _reconcile_one(self, run: dict[str, Any]) -> str | None:
        """Brings one run up to date: its new final state, IN_ENGINE when it is still running in a container
        of its machine's engine, or None."""
        wb = self.wb
        if lease_held(wb.store, run["id"]):
            return None  # someone is launching or following it live
        run = wb.store.get_run(run["id"])  # as it is now: its launcher may have recorded its handle meanwhile
        if run["status"] not in ("queued", "running") or run.get("waiting") is not None:
            return None  # ended meanwhile, or back in the queue (another reconciler requeued it)
        adopted = False
        if run["status"] == "running" and run.get("handle") and not _left_to_the_dispatcher(run) \
                and time.monotonic() - self._follower_started.get(run["id"], float("-inf")) >= FOLLOWER_RESTART:
            # Its lease was free: nobody follows it (a follower killed with -9, a reboot). One is started
            # before anything here asks the host (this process may exit first); it takes the run over once
            # this look lets go, or finds it ended. Not again from this process for a while (the app looks
            # every 2 s: a follower that cannot start is not restarted at that rate).
            self._follower_started[run["id"]] = time.monotonic()
            wb.follow_in_background(run["id"])
        try:
            if not run.get("handle"):
                found = adopt(wb, run)
                if found is None:
                    request = (run.get("placement") or {}).get("request")
                    if request is not None and wb.store.requeue(
                            run["id"], request, "back in the queue: its dispatcher died before starting it"):
                        ensure_dispatcher(wb)  # placed from the queue by a dispatcher that died: placed again
                        return "queued"
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
            if (run.get("machine") or "local") != "local":  # the host's engine, over SSH: the host is gone
                from workbench.machines.ssh import SSHError
                raise SSHError(f"{run['machine']}: {first_line(exc)}") from None
            self._say_once(f"the Docker engine stopped answering ({first_line(exc)}); "
                           "its runs are shown as last recorded")
            return None
        finally:
            run_ingestor.release()
        if state.state != "running":
            return state.state
        if adopted:
            wb.follow_in_background(run["id"])  # its own follower died with its launcher
        return IN_ENGINE if wb.executors.declared(run["executor"]).runs_in_image else None

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
        if message not in self.said and not self.closed:
            self.said.add(message)
            self.wb.progress(message)


def _left_to_the_dispatcher(run: dict[str, Any]) -> bool:
    """A scheduler's job (Slurm's) of a sweep gets its follower from the dispatcher once the scheduler starts it
    (group_launch), and a job the scheduler still holds needs none yet: no process per pending array task."""
    backend = BACKENDS.get(run["executor"])
    if backend is None or backend.held_reason is None:
        return False
    return bool(run.get("sweep_id")) or (run.get("status_reason") or "").startswith(backend.held_reason)


def ingestor(wb: Services, run: dict[str, Any], owner: str | None = None) -> RunIngestor:
    return RunIngestor(wb.store, wb.executors.for_run(run), run, wb.dirs.run_dir(run["id"]), owner)


def adopt(wb: Services, run: dict[str, Any]) -> dict[str, Any] | None:
    """The run's container (or process) found by its labels, recorded as running; None when it
    never started. EngineUnavailable when that cannot be told."""
    executor = wb.executors.for_run(run)
    handle = executor.adopt(run["id"], executor.host.run_dir(run["id"])) if isinstance(executor, Adopts) else None
    if handle is None:
        return None
    if wb.store.mark_running(run["id"], handle.to_record(), time.time(), adopted=True):
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
    if owner_gone(owner):
        store.release_lease(lease_name(run_id), owner)  # only if still that dead owner's
        return False
    return True


def remove_orphan_containers(wb: Services, machine: str = "local") -> int:
    """Our containers on the machine's engine that no active run owns, removed; how many."""
    removed = 0
    for kind in [kind for kind, backend in BACKENDS.items() if backend.runs_in_image]:
        executor = wb.executors.get(machine, kind)
        assert isinstance(executor, RunsInImage)
        found = executor.list({"workbench.instance": wb.store.instance, "workbench.kind": "run"})
        active = wb.store.active_run_ids()  # read after the listing: see DockerExecutor.remove_orphans
        removed += executor.remove_orphans(found, active)
    return removed


def mark_unreachable(wb: Services, machine: str, runs: list[dict[str, Any]], exc: BaseException) -> None:
    """The host does not answer: its runs stay running (they live on the host), marked with since when, and
    what this process holds for the host is dropped so the next look reconnects."""
    wb.executors.forget_machine(machine)
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    for run in runs:
        wb.store.note_unreachable(run["id"], UNREACHABLE, f"{UNREACHABLE} since {since}",
                                  f"{machine} does not answer: {first_line(exc)}")


def mark_reachable(wb: Services, machine: str, runs: list[dict[str, Any]]) -> None:
    for run in runs:  # as read when the pass began: one marked since is cleared by the next pass
        if (run.get("status_reason") or "").startswith(UNREACHABLE):
            wb.store.clear_unreachable(run["id"], UNREACHABLE, f"{machine} answers again; caught up")
