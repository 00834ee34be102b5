"""The dispatcher: starts queued runs as machines free up.

One at a time, by a lease in the database (`dispatcher`); started detached (`workbench _dispatch`) whenever
a run is queued and none holds the lease, and by any Workbench start that finds the queue non-empty (after
a reboot), and exits when the queue drains. Each pass looks at the waiting runs, highest priority first,
then first come: a run that fits somewhere now is placed (its GPUs reserved in the transaction that takes it
off the queue, so no other dispatcher, CLI or the app can take them) and launched, then followed by a
detached follower like any run; one that fits nowhere keeps waiting, with its reason updated. A pass runs
when a reservation or an active run changed (a run ended: its GPUs are free), and at least every RESURVEY
seconds (a foreign process on a GPU may have ended)."""

from __future__ import annotations

import time
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.services import placement as place
from workbench.services import sweeps
from workbench.services.context import Services, first_line
from workbench.services.dispatch_trigger import LEASE
from workbench.services.group_launch import follow_started, recorded_launch_inputs, start_groups
from workbench.services.launch import launch_recorded
from workbench.services.reconcile import adopt, lease_held
from workbench.store.leases import LeaseKeeper, lease_name, new_owner

LEASE_TTL = 10.0
LEASE_RENEW = 2.0
POLL = 0.1        # how often the database is looked at for a change (one small query)
RESURVEY = 5.0    # machines are surveyed again at least this often while runs wait
PRUNE_LOOK = 1.0  # how often running trials of a sweep that prunes are compared with the median


def dispatch(wb: Services, follow: Callable[[str], None], *, idle_exit: bool = True) -> int:
    """Dispatches until the queue is empty; the number of runs started. Returns at once (0) when another
    dispatcher holds the lease. `follow(run_id)` starts the ingestion of a run it launched."""
    started = 0
    while True:
        owner = new_owner()
        if not wb.store.acquire_lease(LEASE, owner, LEASE_TTL):
            return started
        keeper = LeaseKeeper(wb.store, LEASE, owner, LEASE_TTL, LEASE_RENEW)
        try:
            started += _dispatch_while_waiting(wb, follow, keeper.lost)
        finally:
            keeper.stop()
            wb.store.release_lease(LEASE, owner)
        # a run queued just as this one found the queue empty saw the lease held and started no dispatcher
        if not idle_exit or not (wb.store.has_waiting() or wb.store.has_running_sweeps()):
            return started


def _dispatch_while_waiting(wb: Services, follow: Callable[[str], None], lost: Any) -> int:
    started = 0
    version: Any = None
    surveyed_at = 0.0
    every = RESURVEY
    while True:
        if lost.is_set():
            return started  # another dispatcher holds the lease now: it goes on, this one stops
        busy, now = wb.store.dispatch_look()
        if not busy:
            return started
        if now == version and time.monotonic() - surveyed_at < every:
            time.sleep(POLL)  # one small query per look: nothing changed, nothing to do
            continue
        wb.store.release_dead_reservations()
        requeue_dead_placements(wb, follow)
        surveyed_at = time.monotonic()
        sweeps.advance(wb)  # what ended told, pruning, budget, new tpe trials asked, finished sweeps closed
        follow_started(wb, follow)  # a job array's tasks, once their scheduler starts them
        started += dispatch_pass(wb, wb.store.waiting_runs(light=True), follow)
        version = wb.store.reservations_version()
        # a sweep that prunes is looked at every PRUNE_LOOK: its running trials' metrics decide
        every = PRUNE_LOOK if any(s["options"].get("prune") for s in wb.store.sweeps("running")) else RESURVEY


def dispatch_pass(wb: Services, waiting: list[dict[str, Any]], follow: Callable[[str], None]) -> int:
    """One look at the machines for every waiting run, in queue order; the runs started."""
    started, waiting = start_groups(wb, waiting, follow)  # a sweep bound for a Slurm cluster: one job array
    surveys: dict[tuple[str, int, str | None], place.Survey] = {}
    slots = sweeps.in_flight_limits(wb)  # a sweep's trials beyond its max_parallel wait their turn
    reasons: dict[str, str] = {}

    def waits(run: dict[str, Any], reason: str) -> None:
        if run.get("status_reason") != reason:
            reasons[run["id"]] = reason

    for run in waiting:
        if run.get("sweep_id") in slots:
            if slots[run["sweep_id"]] <= 0:
                waits(run, f"waiting: sweep {run['sweep_id']} has its most trials running")
                continue
        request = run["waiting"] or {}
        gpus, executor = int(request.get("gpus") or 0), request.get("executor")
        names = place.known_candidates(wb, request.get("machines"))
        if not names:  # every machine it named was removed meanwhile
            wb.store.finish_run(run["id"], "failed", exit_code=None,
                                reason=f"cannot be placed: none of its machines ({request.get('machines')}) exists")
            continue
        missing = [n for n in names if (n, gpus, executor) not in surveys]
        for found in place.survey_all(wb, missing, gpus, executor):
            surveys[(found.machine, gpus, executor)] = found
        mine = [surveys[(n, gpus, executor)] for n in names]
        chosen = place.choose(mine, gpus)
        if chosen is None:
            waits(run, place.why_not(mine, gpus))
            continue
        placement = place.placement_of(chosen, gpus, mine)
        taken = {g.uuid for g in placement.gpus.gpus} if placement.gpus else set()
        for survey in surveys.values():  # what this pass gave away is not free for the runs after it
            if survey.machine == chosen.machine:
                survey.free = [g for g in survey.free if g.uuid not in taken]
                survey.active += 1
        if start_waiting(wb, run, placement):
            started += 1
            if run.get("sweep_id") in slots:
                slots[run["sweep_id"]] -= 1
            if wb.store.get_run(run["id"]).get("handle"):  # started (one that failed to start is recorded)
                try:
                    follow(run["id"])
                except Exception as exc:  # noqa: BLE001 - the reconciler follows it then
                    wb.progress(f"run {run['id']}: no follower started ({first_line(exc)})")
    wb.store.set_waiting_reasons(reasons)
    return started


def requeue_dead_placements(wb: Services, follow: Callable[[str], None] | None = None) -> None:
    """Runs a dispatcher placed whose launcher is gone (its lease expired, or its process died) before it
    recorded the start: adopted when they started after all (a job array submitted just before the kill),
    otherwise back in the queue, their GPUs released (the reconciler does the same; here the queue need not
    wait for it)."""
    for run in wb.store.active_runs():
        request = (run.get("placement") or {}).get("request")
        if (request is not None and run["status"] == "queued" and run.get("waiting") is None
                and not run.get("handle") and not lease_held(wb.store, run["id"])):
            adopted = None
            if run.get("executor") and not place.seems_down(run.get("machine") or "local"):
                try:
                    adopted = adopt(wb, run)
                except Exception:  # noqa: BLE001 - its machine cannot tell: placed again, as before adoption
                    adopted = None
            if adopted is not None and adopted.get("handle"):
                if follow is not None:
                    follow(run["id"])
                continue
            wb.store.requeue(run["id"], request, "back in the queue: its dispatcher died before starting it")


def start_waiting(wb: Services, run: dict[str, Any], placement: place.Placement) -> bool:
    """Takes the run off the queue onto `placement` (GPUs reserved) and launches it. False when it was no
    longer waiting (cancelled, or placed by another dispatcher) or its GPUs were just taken."""
    run = wb.store.get_run(run["id"])  # whole: a pass reads only what placing needs
    run_id = run["id"]
    launcher = new_owner()
    wb.store.acquire_lease(lease_name(run_id), launcher, 20.0)  # owned before it leaves the queue
    uuids = [g.uuid for g in placement.gpus.gpus] if placement.gpus else []
    fields = {**placement.fields(run["waiting"] or {}), "status_reason": None}
    if not wb.store.place_run(run_id, placement.machine, uuids, fields, from_queue=True):
        wb.store.release_lease(lease_name(run_id), launcher)
        return False
    try:
        wb.store.add_event(run_id, "placed", placement.reason)
        spec, exp = recorded_launch_inputs(run)
        launch_recorded(wb, run_id, run["seq"], spec, exp, run["params"], placement.executor, placement.machine,
                        placement.gpus, launcher, snapshot_hash=run["snapshot"])
    except Exception as exc:  # noqa: BLE001 - one run that cannot start never stops the queue
        reason = exc.message if isinstance(exc, WorkbenchError) else f"could not be started: {first_line(exc)}"
        wb.store.finish_run(run_id, "failed", exit_code=None, reason=reason)  # (its GPUs released)
        wb.store.release_lease(lease_name(run_id), launcher)
        wb.progress(f"run {run_id} failed to start on {placement.machine}: {reason}")
    return True
