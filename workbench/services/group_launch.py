"""A grid or random sweep's queued trials, placed on a machine whose own scheduler queues jobs (a Slurm
cluster), go there as one submission — a job array, `max_parallel` kept by the scheduler — rather than one
sbatch per trial as slots free: the cluster sees one job, its queue holds the rest, and the dispatcher need
not stay to feed it. Each trial is still one run in the history. A task the scheduler still holds gets no
follower (a process each: a 100-task array would start 100 of them to wait); the dispatcher, which stays
while the sweep runs, starts one for each task once the scheduler starts it (`follow_started`). A sweep with a
budget goes trial by trial (only the dispatcher can stop before the budget is spent); tpe asks each trial
from what came before, so it goes trial by trial too."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.execution.base import Handle, HeldWhilePending, Launch, SubmitsMany
from workbench.projects.spec import Experiment, ProjectSpec
from workbench.services import placement as place
from workbench.services.context import Services, first_line
from workbench.services.launch import launch_failed, mark_started, prepare_launch
from workbench.services.reconcile import lease_held
from workbench.services.records import experiment_from_record, unredacted_env
from workbench.store.leases import LeaseKeeper, lease_name, new_owner

GROUP_LEASE_TTL = 60.0  # the trials' launch leases while the whole array is prepared and submitted (renewed)
FOLLOWER_START_GRACE = 30.0  # a follower started this long ago and not holding its run's lease has died


def recorded_launch_inputs(run: dict[str, Any]) -> tuple[ProjectSpec, Experiment]:
    """The project and experiment of a recorded run, as it was recorded (its env unredacted)."""
    spec = ProjectSpec(name=run["project"], root=Path(run["project_path"]), exclude=[], experiments={})
    exp = experiment_from_record(run["spec"])
    exp.env = unredacted_env(exp, Path(run["project_path"]))
    return spec, exp


def start_groups(wb: Services, waiting: list[dict[str, Any]], follow: Callable[[str], None]) -> tuple[int, list[dict[str, Any]]]:
    """Starts every sweep's waiting trials that can go as one submission; (runs started, the waiting runs
    left for the run-by-run pass, in their order)."""
    by_sweep: dict[str, list[dict[str, Any]]] = {}
    for run in waiting:
        if run.get("sweep_id"):
            by_sweep.setdefault(run["sweep_id"], []).append(run)
    started, grouped = 0, set()
    for sweep_id, runs in by_sweep.items():
        chosen = _group_target(wb, sweep_id, runs)
        if chosen is None:
            continue
        sweep, placement = chosen
        grouped.add(sweep_id)
        started += _start_group(wb, sweep, runs, placement, follow)
    return started, [run for run in waiting if run.get("sweep_id") not in grouped]


def _group_target(wb: Services, sweep_id: str, runs: list[dict[str, Any]]) -> tuple[dict[str, Any], place.Placement] | None:
    sweep = wb.store.get_sweep(sweep_id)
    if sweep["method"] not in ("grid", "random") or sweep["options"].get("budget") or sweep["status"] != "running":
        return None
    request = runs[0].get("waiting") or {}
    names = place.known_candidates(wb, request.get("machines"))
    if len(names) != 1 or not wb.executors.submits_many_on(names[0]):
        return None  # placed among several machines (trial by trial, wherever each fits), or no scheduler there
    gpus, executor = int(request.get("gpus") or 0), request.get("executor")
    (survey,) = place.survey_all(wb, names, gpus, executor)
    if not survey.scheduler or place.choose([survey], gpus) is None:
        return None
    if not isinstance(wb.executors.get(survey.machine, survey.executor), SubmitsMany):
        return None
    return sweep, place.placement_of(survey, gpus)


def _start_group(wb: Services, sweep: dict[str, Any], runs: list[dict[str, Any]], placement: place.Placement,
                 follow: Callable[[str], None]) -> int:
    launcher = new_owner()
    renewing = LeaseKeeper(wb.store, [], launcher, GROUP_LEASE_TTL, GROUP_LEASE_TTL / 5)  # names added as placed
    try:
        return _place_and_submit(wb, sweep, runs, placement, launcher, renewing)
    finally:
        renewing.stop()


def _place_and_submit(wb: Services, sweep: dict[str, Any], runs: list[dict[str, Any]], placement: place.Placement,
                      launcher: str, renewing: LeaseKeeper) -> int:
    prepared: list[tuple[str, Any, Launch]] = []  # (run id, executor, launch)
    for light in runs:
        run = wb.store.get_run(light["id"])
        wb.store.acquire_lease(lease_name(run["id"]), launcher, GROUP_LEASE_TTL)
        if not wb.store.place_run(run["id"], placement.machine, [], {**placement.fields(run["waiting"] or {}),
                                                                      "status_reason": None}, from_queue=True):
            wb.store.release_lease(lease_name(run["id"]), launcher)  # cancelled, or placed by another
            continue
        renewing.names.append(lease_name(run["id"]))
        wb.store.add_event(run["id"], "placed", f"{placement.reason}; one job array for sweep {sweep['id']}")
        try:
            spec, exp = recorded_launch_inputs(run)
            run_exec, launch = prepare_launch(wb, run["id"], spec, exp, run["params"], placement.executor,
                                              placement.machine, None, snapshot_hash=run["snapshot"])
        except Exception as exc:  # noqa: BLE001 - this trial fails, saying why; the others go on
            renewing.names.remove(lease_name(run["id"]))
            launch_failed(wb, run["id"], placement.machine, launcher, exc)
            continue
        prepared.append((run["id"], run_exec, launch))
    if not prepared:
        return 0
    run_exec = prepared[0][1]
    assert isinstance(run_exec, SubmitsMany)
    try:
        handles = run_exec.submit_many([launch for _, _, launch in prepared], sweep["options"]["max_parallel"],
                                       sweep["id"])
    except Exception as exc:  # noqa: BLE001 - the trials fail with the one reason, unless sbatch took them
        renewing.stop()
        started = 0
        for run_id, _, launch in prepared:
            handle = _submitted_anyway(run_exec, run_id, launch)  # the answer was lost, not the submission
            if handle is not None:
                mark_started(wb, run_exec, run_id, handle, launch.argv, placement.executor, launcher)
                started += 1
            else:
                launch_failed(wb, run_id, placement.machine, launcher, exc)
        if not started:
            wb.progress(f"sweep {sweep['id']}: the job array was not submitted: "
                        f"{exc.message if isinstance(exc, WorkbenchError) else first_line(exc)}")
        return started
    renewing.stop()
    for (run_id, _, launch), handle in zip(prepared, handles):
        mark_started(wb, run_exec, run_id, handle, launch.argv, placement.executor, launcher)
    return len(prepared)


def _submitted_anyway(run_exec: SubmitsMany, run_id: str, launch: Launch) -> Handle | None:
    try:
        return run_exec.adopt_from_run_dir(run_id, launch.run_dir)  # array tasks: one squeue each would find none
    except Exception:  # noqa: BLE001 - the machine does not answer: nothing to say it was submitted
        return None


_followed: dict[str, float] = {}  # run id -> when this dispatcher started its follower


def follow_started(wb: Services, follow: Callable[[str], None]) -> None:
    """A follower for each running trial nobody follows whose scheduler no longer holds it (once: a
    follower just started has not taken the run's lease yet)."""
    now = time.monotonic()
    for run_id in [r for r, at in _followed.items() if now - at > FOLLOWER_START_GRACE]:
        del _followed[run_id]
    for sweep in wb.store.sweeps("running"):
        for run in wb.store.trials(sweep["id"]):
            if (run["status"] != "running" or not run.get("handle") or run["id"] in _followed
                    or lease_held(wb.store, run["id"])):
                continue
            try:
                executor = wb.executors.for_run(run)
                if not isinstance(executor, HeldWhilePending) or executor.held(Handle.from_record(run["handle"])):
                    continue
                _followed[run["id"]] = now
                follow(run["id"])
            except Exception as exc:  # noqa: BLE001 - looked at again on the next pass
                wb.progress(f"run {run['id']}: no follower started ({first_line(exc)})")
