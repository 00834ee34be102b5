"""Sweeps: `workbench sweep` runs an experiment's `[experiments.X.sweep]` as trials, each trial a run that
goes through the queue (placed on free GPUs by the dispatcher, at most `max_parallel` at once).

- grid: every combination of the listed values; random: `samples` points drawn by Optuna's RandomSampler
  (ranges uniform, or log-uniform with `log = true`); both are recorded as queued trials at once.
- tpe: Bayesian search with Optuna's TPESampler (ask-and-tell, `constant_liar` for trials in flight), asked
  by the dispatcher — the study's only writer — one trial at a time as slots free, up to `trials`.
  The history is the truth: a dispatcher that starts (after a reboot, or another one's death) rebuilds the
  study from the sweep's finished and running trials, so no trial is repeated or lost.
- The objective is the last value of the metric `objective` each trial writes; a trial that never writes it
  fails its objective (said in its events). `prune = "median"`: a running trial whose objective at its latest
  step is worse than the median of the finished trials at that step is cancelled, recorded as pruned.
- `budget`: no trial starts once what the sweep spent, plus what a trial has cost on average, would exceed
  it; the sweep stops, saying why.
Experiments never import Optuna; only this module (in the dispatcher and `workbench sweep`) does."""

from __future__ import annotations

import itertools
import math
import secrets
import statistics
import time
from pathlib import Path
from typing import Any, Iterator

from workbench.errors import WorkbenchError
from workbench.execution.base import Handle
from workbench.projects.snapshot import large_files_summary, snapshot_lock, take_snapshot
from workbench.projects.spec import Experiment, ProjectSpec, env_from_workstation, load_spec, parse_overrides
from workbench.services.context import Services
from workbench.services.dispatch_trigger import ensure_dispatcher
from workbench.services.git_state import git_state
from workbench.services.launch import check_priority, new_record, warn_literal_secrets
from workbench.services.notebook_checks import check_notebook
from workbench.services.projects import register_launched
from workbench.services.records import experiment_from_record, spec_record
from workbench.services.runs import cancel_many

ACTIVE = ("queued", "running")
MAX_TRIALS = 100_000  # README, Sweeps: a grid or random sweep larger than this is refused with its count
PAGE = 1000  # trials made and recorded at a time (and asked of one Optuna study)
PRUNED = "pruned: "


def start_sweep(wb: Services, path: str, experiment: str | None = None, overrides: list[str] | None = None, *,
                machine: str | None = None, executor: str | None = None, priority: int = 0) -> dict[str, Any]:
    check_priority(priority)
    spec = load_spec(path)
    exp = spec.experiment(experiment)
    if not exp.sweep:
        raise WorkbenchError(f"experiment {exp.name!r} declares no sweep",
                             hint=f"add [experiments.{exp.name}.sweep] to {spec.spec_path} (see README, Sweeps)")
    base = {**exp.params, **parse_overrides(exp, overrides or [], str(spec.spec_path))}
    env_from_workstation(exp)  # a `from_env` variable missing here: said now, before anything is recorded
    check_notebook(spec.root, exp)  # and a broken notebook
    warn_literal_secrets(wb, spec, exp)
    swept = [name for name in exp.sweep if name in {o.split("=", 1)[0].strip() for o in overrides or []}]
    if swept:
        raise WorkbenchError(f"param {swept[0]!r} is swept; it cannot also be set with -p")
    requested: str | list[str] = machine or exp.machines or exp.machine or "auto"
    if isinstance(requested, str) and requested != "auto":
        wb.executors.machine(requested)
    options = dict(exp.sweep_options)
    count = planned_count(exp)
    if count > MAX_TRIALS:
        raise WorkbenchError(f"sweep of {exp.name!r}: {_count_said(exp, count)}, more than the {MAX_TRIALS:,} trials "
                             "a sweep may have; nothing was recorded", hint="sweep fewer values, or use method = \"random\" with "
                             "`samples` or \"tpe\" with `trials`")
    options["trials"] = count or options["trials"]
    sweep_id = secrets.token_hex(4)
    record = {"id": sweep_id, "project": spec.name, "project_path": str(spec.root), "experiment": exp.name,
              "method": exp.sweep_method, "space": exp.sweep, "options": options, "base_params": base,
              "request": {"machines": requested, "gpus": exp.gpus, "executor": executor}, "priority": priority,
              "experiment_spec": None, "status": "running", "created_at": time.time()}
    git = git_state(spec.root, spec.exclude)
    git.pop("notes", None)
    with snapshot_lock(wb.dirs.snapshots, exclusive=False):  # gc keeps it once recorded
        snapshot = take_snapshot(spec.root, spec.exclude, wb.dirs.snapshots)
        record["snapshot"] = snapshot.hash
        import json
        record["experiment_spec"] = json.dumps(spec_record(exp))
        recorded = trial_spec(exp)
        _record_trials(wb, record, spec, exp, base, git, recorded)
    wb.progress(f"snapshot {snapshot.hash[:12]}: {snapshot.files} files, {snapshot.bytes:,} bytes")
    if snapshot.large:  # one line for the sweep, not one per trial
        wb.progress("warning: " + large_files_summary(snapshot.large, spec.spec_path))
    wb.progress(f"sweep {sweep_id}: {exp.sweep_method}, {options['trials']} trial(s), at most "
                f"{options['max_parallel']} at once" + (f", budget ${options['budget']:.2f}" if options["budget"] else ""))
    ensure_dispatcher(wb)
    return wb.store.get_sweep(sweep_id)


def _record_trials(wb: Services, record: dict[str, Any], spec: ProjectSpec, exp: Experiment,
                   base: dict[str, Any], git: dict[str, Any], recorded: dict[str, Any]) -> None:
    """The sweep and its queued trials, a page per transaction (a follower renewing its lease never waits
    behind 100,000 inserts), the points made page by page (a big grid never sits in memory). The first page
    goes with the sweep itself, so a dispatcher never sees a sweep without trials; a failure part way ends
    the sweep `failed` and takes its queued trials out of the queue."""
    points = planned_points(exp, secrets.randbits(32))
    done = 0

    def record_page(page: list[dict[str, Any]]) -> None:
        nonlocal done
        for point in page:
            _record_trial(wb, record, spec, exp, {**base, **point}, done, git, recorded)
            done += 1

    with wb.store.tx():
        wb.store.insert_sweep(record)
        record_page(list(itertools.islice(points, PAGE)))
    register_launched(wb.store, spec)
    try:
        while page := list(itertools.islice(points, PAGE)):
            with wb.store.tx():
                record_page(page)
    except BaseException as exc:
        wb.store.finish_sweep(record["id"], "failed", f"recording its trials stopped: {exc!r}"[:300])
        _cancel_waiting(wb, record["id"], f"sweep {record['id']} failed")
        raise


def planned_count(exp: Experiment) -> int:
    """How many trials a grid or random sweep will run (tpe: none in advance), counted without making them."""
    if exp.sweep_method == "grid":
        return math.prod(len(values) for values in exp.sweep.values())
    if exp.sweep_method == "random":
        return exp.sweep_samples or math.prod(len(values) for values in exp.sweep.values())
    return 0


def _count_said(exp: Experiment, count: int) -> str:
    if exp.sweep_method == "random" and exp.sweep_samples:
        return f"samples = {count:,}"
    sizes = " × ".join(str(len(values)) for values in exp.sweep.values())
    return f"the grid of {len(exp.sweep)} param(s) ({sizes} values) has {count:,} trials"


def planned_points(exp: Experiment, seed: int) -> Iterator[dict[str, Any]]:
    """The trials of a grid or random sweep, made one at a time as they are taken."""
    names = list(exp.sweep)
    if exp.sweep_method == "grid":
        return (dict(zip(names, values)) for values in itertools.product(*(exp.sweep[n] for n in names)))
    return _random_points(exp, seed) if exp.sweep_method == "random" else iter(())


def _random_points(exp: Experiment, seed: int) -> Iterator[dict[str, Any]]:
    import optuna

    sampler = optuna.samplers.RandomSampler(seed=seed)  # one seeded stream across the pages
    distributions = _distributions(exp.sweep)
    left = planned_count(exp)
    while left > 0:
        study = _quiet_study(sampler, "maximize")  # a study per page: a study keeps every trial it asked
        for _ in range(min(PAGE, left)):
            yield study.ask(distributions).params
        left -= min(PAGE, left)


def _distributions(space: dict[str, Any]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    made: dict[str, Any] = {}
    for name, values in space.items():
        if isinstance(values, dict):
            kind = IntDistribution if values["int"] else FloatDistribution
            made[name] = kind(values["low"], values["high"], log=values["log"])
        else:
            made[name] = CategoricalDistribution(values)
    return made


def _quiet_study(sampler: Any, direction: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(sampler=sampler, direction=direction)


def trial_spec(exp: Experiment) -> dict[str, Any]:
    """The experiment as each trial records it: without the sweep's space (the sweep keeps that; a trial
    is one point of it). Made once per sweep start or tpe ask, and passed to every trial it records."""
    return {**spec_record(exp), "sweep": {}}


def _record_trial(wb: Services, sweep: dict[str, Any], spec: ProjectSpec, exp: Experiment, values: dict[str, Any],
                  trial: int, git: dict[str, Any], recorded: dict[str, Any]) -> str:
    record, _ = new_record(wb, spec, exp, values, machine="auto", executor_name=sweep["request"].get("executor")
                           or "docker", rerun_of=None, priority=sweep["priority"], with_git=False,
                           recorded_spec=recorded)
    record.update(git, waiting=sweep["request"], status_reason=f"trial {trial + 1} of sweep {sweep['id']}",
                  snapshot=sweep["snapshot"], sweep_id=sweep["id"], trial=trial)
    wb.store.insert_run(record)
    wb.store.add_event(record["id"], "queued", record["status_reason"])
    return record["id"]


# the dispatcher's part ----------------------------------------------------------------------------
_STUDIES: dict[str, tuple[Any, dict[str, Any], set[str]]] = {}  # sweep id -> (study, run id -> trial, told)


def advance(wb: Services) -> None:
    """Brings every running sweep forward: tells Optuna what ended, prunes, checks the budget, asks for new
    tpe trials where slots are free, and ends a sweep whose trials are all done."""
    for sweep in wb.store.sweeps("running"):
        try:
            _advance_one(wb, sweep)
        except Exception as exc:  # noqa: BLE001 - one broken sweep is ended, saying why; the others go on
            reason = exc.message if isinstance(exc, WorkbenchError) else f"stopped by an error: {exc!r}"[:300]
            _STUDIES.pop(sweep["id"], None)
            wb.store.finish_sweep(sweep["id"], "failed", reason)
            _cancel_waiting(wb, sweep["id"], f"sweep {sweep['id']} failed")


def in_flight_limits(wb: Services) -> dict[str, int]:
    """Sweep id -> how many more of its trials may start now (max_parallel less those placed or running)."""
    limits = {}
    for sweep in wb.store.sweeps("running"):
        placed = sum(1 for run in wb.store.trials(sweep["id"])
                     if run["status"] in ACTIVE and run.get("waiting") is None)
        limits[sweep["id"]] = max(0, sweep["options"]["max_parallel"] - placed)
    return limits


def _advance_one(wb: Services, sweep: dict[str, Any]) -> None:
    options = sweep["options"]
    trials = wb.store.trials(sweep["id"])
    objective = options.get("objective")
    if objective:
        for run in trials:
            if run["status"] == "succeeded" and objective_value(run, objective) is None and not _said(wb, run):
                wb.store.add_event(run["id"], "objective", f"failed its objective: it never wrote {objective!r}")
    if options.get("prune"):
        _prune(wb, sweep, trials)
    if sweep["method"] == "tpe":
        _tell(wb, sweep, trials)
    if options.get("budget") and _over_budget(wb, sweep, trials):
        return
    active = [t for t in trials if t["status"] in ACTIVE]
    if sweep["method"] == "tpe" and len(trials) < options["trials"]:
        room = min(options["max_parallel"] - len(active), options["trials"] - len(trials))
        if room > 0:
            _ask(wb, sweep, trials, room)
            return
    if not active and (sweep["method"] != "tpe" or len(trials) >= options["trials"]):
        best = best_trial(sweep, trials)
        done = sum(1 for t in trials if t["status"] == "succeeded")
        summary = f"{done} of {len(trials)} trial(s) succeeded"
        if best:
            summary += f"; best {best['id']} ({objective} {objective_value(best, objective):g})"
        wb.store.finish_sweep(sweep["id"], "done", summary)


def _said(wb: Services, run: dict[str, Any]) -> bool:
    return any(e["kind"] == "objective" for e in wb.store.events(run["id"]))


def objective_value(run: dict[str, Any], objective: str | None) -> float | None:
    if not objective:
        return None
    value = (run.get("summary") or {}).get(objective)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value else None


def best_trial(sweep: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    objective = sweep["options"].get("objective")
    scored = [t for t in trials if t["status"] == "succeeded" and objective_value(t, objective) is not None]
    if not scored:
        return None
    pick = max if sweep["options"].get("direction", "maximize") == "maximize" else min
    return pick(scored, key=lambda t: objective_value(t, objective))  # type: ignore[arg-type,return-value]


def _over_budget(wb: Services, sweep: dict[str, Any], trials: list[dict[str, Any]]) -> bool:
    from workbench.store.cost import run_cost

    budget = sweep["options"]["budget"]
    now = time.time()
    costs = [run_cost(t, now) or 0.0 for t in trials]
    ended = [c for t, c in zip(trials, costs) if t["status"] not in ACTIVE and t.get("started_at")]
    spent = sum(costs)
    per_trial = statistics.fmean(ended) if ended else 0.0
    waiting = [t for t in trials if t.get("waiting") is not None]
    more_to_start = waiting or (sweep["method"] == "tpe" and len(trials) < sweep["options"]["trials"])
    if not more_to_start or spent + per_trial <= budget:
        return False
    reason = (f"budget ${budget:.2f} reached: ${spent:.2f} spent, a trial costs about ${per_trial:.2f}; "
              f"{len(waiting)} queued trial(s) not started")
    _cancel_waiting(wb, sweep["id"], "sweep stopped: budget")
    wb.store.finish_sweep(sweep["id"], "stopped", reason)
    return True


def _cancel_waiting(wb: Services, sweep_id: str, reason: str) -> None:
    for run in wb.store.trials(sweep_id):
        if run.get("waiting") is not None:
            wb.store.cancel_waiting(run["id"], reason)


_histories: dict[tuple[int, str], dict[int, Any]] = {}  # a finished trial's objective by step: never changes


def _finished_history(wb: Services, seq: int, objective: str) -> dict[int, Any]:
    """Read once per dispatcher: a pruning sweep looks at every finished trial each second."""
    key = (seq, objective)
    if key not in _histories:
        if len(_histories) > 5000:
            _histories.clear()
        _histories[key] = dict(wb.store.metric_history(seq, objective))
    return _histories[key]


def _prune(wb: Services, sweep: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    """Median rule: a running trial whose objective at its latest step is worse than the median of the
    finished trials' values at that step (two or more of them) is cancelled as pruned."""
    objective = sweep["options"]["objective"]
    maximize = sweep["options"].get("direction", "maximize") == "maximize"
    finished = [t for t in trials if t["status"] == "succeeded"]
    if len(finished) < 2:
        return
    histories = [_finished_history(wb, t["seq"], objective) for t in finished]
    for run in trials:
        if run["status"] != "running":
            continue
        mine = wb.store.metric_history(run["seq"], objective)
        if not mine:
            continue
        step, value = mine[-1]
        others = [h[step] for h in histories if h.get(step) is not None]
        if len(others) < 2 or value is None:
            continue
        median = statistics.median(others)
        if (value < median) if maximize else (value > median):
            reason = f"{PRUNED}{objective} {value:g} at step {step} worse than the median {median:g} of earlier trials"
            wb.store.update_run(run["id"], cancel_requested=1)
            wb.store.add_event(run["id"], "pruned", reason)
            try:
                wb.executors.for_run(run).cancel(Handle.from_record(run["handle"]))
            except Exception:  # noqa: BLE001 - its follower records the end either way
                pass


def _study(wb: Services, sweep: dict[str, Any], trials: list[dict[str, Any]]) -> tuple[Any, dict[str, Any], set[str]]:
    """This dispatcher's Optuna study of the sweep, rebuilt from the history when it has none."""
    import optuna
    from optuna.trial import TrialState, create_trial

    cached = _STUDIES.get(sweep["id"])
    if cached is not None:
        return cached
    options = sweep["options"]
    # seeded by the sweep and how far it got: a study rebuilt after a restart never replays the startup
    # samples it already asked for
    sampler = optuna.samplers.TPESampler(constant_liar=True, seed=int(sweep["id"], 16) + len(trials),
                                         n_startup_trials=min(10, max(2, options["trials"] // 4)))
    study = _quiet_study(sampler, options.get("direction", "maximize"))
    distributions = _distributions(sweep["space"])
    live: dict[str, Any] = {}
    told: set[str] = set()
    for run in trials:
        params = {name: run["params"].get(name) for name in distributions}
        if run["status"] in ACTIVE:
            study.enqueue_trial(params)
            live[run["id"]] = study.ask(distributions)
            continue
        value = objective_value(run, options["objective"])
        state = TrialState.COMPLETE if run["status"] == "succeeded" and value is not None else (
            TrialState.PRUNED if (run.get("status_reason") or "").startswith(PRUNED) else TrialState.FAIL)
        study.add_trial(create_trial(params=params, distributions=distributions, state=state,
                                     value=value if state == TrialState.COMPLETE else None))
        told.add(run["id"])
    _STUDIES[sweep["id"]] = (study, live, told)
    return study, live, told


def _tell(wb: Services, sweep: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    from optuna.trial import TrialState

    study, live, told = _study(wb, sweep, trials)
    for run in trials:
        if run["status"] in ACTIVE or run["id"] in told or run["id"] not in live:
            continue
        value = objective_value(run, sweep["options"]["objective"])
        if run["status"] == "succeeded" and value is not None:
            study.tell(live.pop(run["id"]), value)
        elif (run.get("status_reason") or "").startswith(PRUNED):
            study.tell(live.pop(run["id"]), state=TrialState.PRUNED)
        else:
            study.tell(live.pop(run["id"]), state=TrialState.FAIL)
        told.add(run["id"])


def _ask(wb: Services, sweep: dict[str, Any], trials: list[dict[str, Any]], room: int) -> None:
    import json

    study, live, _ = _study(wb, sweep, trials)
    spec = ProjectSpec(name=sweep["project"], root=Path(sweep["project_path"]), exclude=[], experiments={})
    exp = experiment_from_record(json.loads(sweep["experiment_spec"]))
    recorded = trial_spec(exp)
    distributions = _distributions(sweep["space"])
    following = max((t["trial"] for t in trials), default=-1) + 1  # after the highest (one may be removed)
    for offset in range(room):
        trial = study.ask(distributions)
        with wb.store.tx():  # only while the sweep runs: a cancel between the ask and here records nothing
            if wb.store.get_sweep(sweep["id"])["status"] != "running":
                study.tell(trial, state=_failed())
                return
            run_id = _record_trial(wb, sweep, spec, exp, {**sweep["base_params"], **trial.params},
                                   following + offset, {}, recorded)
        live[run_id] = trial


def _failed() -> Any:
    from optuna.trial import TrialState
    return TrialState.FAIL


def forget_studies() -> None:
    _STUDIES.clear()


def sweep_summary(wb: Services, sweep: dict[str, Any]) -> dict[str, Any]:
    """The sweep with its trials (sorted by the objective, best first; those without a value last),
    progress, the best trial, and its cost so far."""
    from workbench.store.cost import run_cost

    trials = wb.store.trials(sweep["id"])
    objective = sweep["options"].get("objective")
    maximize = sweep["options"].get("direction", "maximize") == "maximize"
    now = time.time()

    def order(t: dict[str, Any]) -> tuple:
        value = objective_value(t, objective)
        return (value is None, -(value or 0.0) if maximize else (value or 0.0), t["trial"])

    rows = []
    for t in sorted(trials, key=order):
        rows.append({"id": t["id"], "trial": t["trial"], "status": "pruned" if (t.get("status_reason") or "")
                     .startswith(PRUNED) else t["status"], "params": {k: t["params"].get(k) for k in sweep["space"]},
                     "objective": objective_value(t, objective), "machine": t["machine"], "cost": run_cost(t, now),
                     "status_reason": t.get("status_reason")})
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    best = best_trial(sweep, trials)
    costs = [r["cost"] for r in rows if r["cost"] is not None]
    return {**{k: v for k, v in sweep.items() if k != "experiment_spec"}, "trials": rows, "progress": counts,
            "best": best["id"] if best else None, "cost": sum(costs) if costs else None}


def cancel_sweep(wb: Services, ref: str) -> dict[str, Any]:
    sweep = wb.store.get_sweep(ref)
    if sweep["status"] == "running":
        wb.store.finish_sweep(sweep["id"], "cancelled", "cancelled by the user")
        _cancel_waiting(wb, sweep["id"], f"sweep {sweep['id']} cancelled")
        cancel_many(wb, [run["id"] for run in wb.store.trials(sweep["id"]) if run["status"] in ACTIVE])
    return wb.store.get_sweep(sweep["id"])
