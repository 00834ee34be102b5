"""Launching: a run recorded, snapshotted, given its image and started on its executor; and a rerun, which
starts the same run again from what the history kept (snapshot, image id, params, experiment)."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from workbench.errors import NoGpuRuntime, WorkbenchError
from workbench.execution.base import Executor, Handle, Launch
from workbench.execution.runtime import runtime_dir
from workbench.machines.gpus import GpuInventory
from workbench.projects.snapshot import (Snapshot, large_files_summary, left_out_summary, snapshot_lock,
                                         take_snapshot)
from workbench.projects.spec import (
    Experiment, ProjectSpec, env_from_workstation, format_param, literal_secrets, load_spec, parse_overrides,
    substitute,
)
from workbench.redaction import redact_env
from workbench.services import placement as place
from workbench.services.context import Services, warn
from workbench.services.dispatch_trigger import ensure_dispatcher
from workbench.services.git_state import git_state
from workbench.services.images import runner_image
from workbench.services.notebook_checks import check_notebook, notebook_warnings
from workbench.services.projects import register_launched
from workbench.services.records import experiment_from_record, spec_record, unredacted_env
from workbench.services.session_setup import docker_needed, lab_image, new_session_file, prepare_session
from workbench.store.leases import LeaseKeeper, lease_name, new_owner

LAUNCH_LEASE_TTL = 20.0  # a launcher renews its hold on a run while it builds or pulls; a dead one lets go
LAUNCH_LEASE_RENEW = 2.0


PRIORITY_RANGE = (-2**63, 2**63 - 1)  # what SQLite stores as an integer


def check_priority(priority: int) -> None:
    if not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
        raise WorkbenchError(f"--priority {priority}: give a whole number from {PRIORITY_RANGE[0]} to "
                             f"{PRIORITY_RANGE[1]}", hint="higher runs first; 0 is the default")


def choose_executor(wb: Services, requested: str | None, machine: str = "local") -> str:
    return wb.executors.choose(machine, requested, wb.progress)


def launch(wb: Services, path: str, experiment: str | None = None, overrides: list[str] | None = None, *,
           machine: str | None = None, executor: str | None = None, priority: int = 0) -> dict[str, Any]:
    """Starts a run of the experiment: on `machine`, or (auto, or the experiment's `machines`) on the
    machine placement chooses, or in the queue when none can take it now (started by the dispatcher)."""
    check_priority(priority)
    spec = load_spec(path)
    exp = spec.experiment(experiment)
    values = {**exp.params, **parse_overrides(exp, overrides or [], str(spec.spec_path))}
    warn_literal_secrets(wb, spec, exp)
    check_notebook(spec.root, exp)  # a broken notebook is refused before anything is recorded
    requested: str | list[str] = machine if machine is not None else (exp.machines or exp.machine or "local")
    if isinstance(requested, str) and requested != "auto":
        named = wb.executors.machine(requested)
        return start(wb, spec, exp, values, choose_executor(wb, executor, named), machine=named, priority=priority,
                     from_folder=True)
    return place_and_start(wb, spec, exp, values, requested, executor, priority)


def place_and_start(wb: Services, spec: ProjectSpec, exp: Experiment, values: dict[str, Any],
                    requested: str | list[str], executor: str | None, priority: int = 0, *, queue: bool = True,
                    session: dict[str, Any] | None = None) -> dict[str, Any]:
    """Started on the machine placement chooses among `requested` (auto, or a list); when none can take it
    now, queued (or, without `queue`, refused saying why)."""
    names = place.candidates(wb, requested)
    request = {"machines": requested, "gpus": exp.gpus, "executor": executor}
    for _ in range(3):  # another launcher may reserve the chosen GPUs first: look again
        surveys = place.survey_all(wb, names, exp.gpus, executor)
        place.refuse_if_never(surveys, exp.gpus)
        chosen = place.choose(surveys, exp.gpus)
        if chosen is None:
            break
        try:
            return start(wb, spec, exp, values, chosen.executor or "docker", machine=chosen.machine,
                         placement=place.placement_of(chosen, exp.gpus, surveys), request=request, priority=priority,
                         from_folder=True, session=session)
        except GpusTaken:
            continue
    else:
        surveys = place.survey_all(wb, names, exp.gpus, executor)
    reason = place.why_not(surveys, exp.gpus)
    if not queue:
        raise WorkbenchError(f"no machine can take it now ({reason})", hint="add --queue to wait for one")
    return enqueue(wb, spec, exp, values, request, reason, priority, session=session)


NOTEBOOK_PARAMS = "WORKBENCH_NOTEBOOK_PARAMS"  # a notebook run's params as JSON, typed as declared


class GpusTaken(WorkbenchError):
    """The GPUs chosen were reserved by another run meanwhile."""


def warn_literal_secrets(wb: Services, spec: ProjectSpec, exp: Experiment) -> None:
    """Once per launch: secret-looking env names whose values are written in workbench.toml."""
    names = literal_secrets(exp)
    if names:
        forms = ", ".join(f'{n} = {{ from_env = "{n}" }}' for n in names)
        wb.progress(f"warning: {spec.spec_path} holds the value of {', '.join(names)} in clear; keep it out of the "
                    f"file with env = {{ {forms} }} (read from your environment at each launch, never stored)")


def run_env(exp: Experiment, values: dict[str, Any], run_id: str) -> dict[str, str]:
    # Python block-buffers stdout that is not a terminal: without PYTHONUNBUFFERED, live logs stay empty and
    # a cancelled run loses what it printed. The spec's env may still say otherwise.
    env = {"PYTHONUNBUFFERED": "1", **exp.env, **env_from_workstation(exp),
           **{f"WB_PARAM_{k.upper()}": format_param(v) for k, v in values.items()}, "WORKBENCH_RUN_ID": run_id}
    if exp.notebook:  # typed, for the runner to inject (WB_PARAM_* are strings)
        env[NOTEBOOK_PARAMS] = json.dumps(values)
    return env


def new_record(wb: Services, spec: ProjectSpec, exp: Experiment, values: dict[str, Any], *, machine: str,
               executor_name: str, rerun_of: str | None, priority: int, with_git: bool,
               recorded_spec: dict[str, Any] | None = None, kind: str = "run",
               git: dict[str, Any] | None = None) -> tuple[dict[str, Any], list]:
    """A new run's record (not stored yet), with a fresh id, and the git notes to record once it is stored.
    `git`: the state to record as it is (a commit's run), instead of the folder's."""
    run_id = secrets.token_hex(4)
    while wb.store.run_exists(run_id):
        run_id = secrets.token_hex(4)
    argv = substitute(exp.command, {**values, "run_id": run_id})  # {output}: the executor puts it in
    if git is None:
        git = git_state(spec.root, spec.exclude) if with_git else {}
    else:
        git = {**git, "notes": []}
    git_notes = git.pop("notes", [])  # (kind, message): events once the run is recorded
    record = {
        "id": run_id, "project": spec.name, "project_path": str(spec.root), "experiment": exp.name,
        "status": "queued", "machine": machine, "executor": executor_name, "created_at": time.time(),
        "params": values, "argv": argv, "env": redact_env(run_env(exp, values, run_id)), "rerun_of": rerun_of,
        "spec": recorded_spec or spec_record(exp), "priority": priority, "kind": kind, **git,
    }
    return record, git_notes


def _record_notes(wb: Services, run_id: str, git_notes: list) -> None:
    for kind, note in git_notes:
        if kind == "warning":
            warn(wb, run_id, note)
        else:
            wb.store.add_event(run_id, kind, note)


def _snapshot_warnings(wb: Services, run_id: str, snapshot: Snapshot, spec: ProjectSpec) -> None:
    """What the user should know about a snapshot just taken, once per launch: what it left out, and its
    files over LARGE_FILE (one line for all of them)."""
    if snapshot.left_out:
        warn(wb, run_id, "snapshot " + left_out_summary(snapshot.left_out))
    if snapshot.large:
        warn(wb, run_id, large_files_summary(snapshot.large, spec.spec_path))


def enqueue(wb: Services, spec: ProjectSpec, exp: Experiment, values: dict[str, Any], request: dict[str, Any],
            reason: str, priority: int = 0, session: dict[str, Any] | None = None, *,
            source: Path | None = None, git: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run no machine can take now: recorded `queued` with its snapshot (the project as it is now) and
    what it waits for; the dispatcher starts it when a machine can. `source`: the folder snapshotted instead
    of the project's (a commit's files written out), with `git` its recorded state."""
    record, git_notes = new_record(wb, spec, exp, values, machine="auto", executor_name=request.get("executor")
                                   or "docker", rerun_of=None, priority=priority, with_git=True,
                                   kind="session" if session is not None else "run", git=git)
    if session is not None:
        new_session_file(wb.dirs.run_dir(record["id"]), session.get("port"))
    record.update(waiting=request, status_reason=reason)
    with snapshot_lock(wb.dirs.snapshots, exclusive=False):  # gc keeps it once recorded
        snapshot = take_snapshot(source or spec.root, spec.exclude, wb.dirs.snapshots)
        record["snapshot"] = snapshot.hash
        seq = wb.store.insert_run(record)
    register_launched(wb.store, spec)
    wb.progress(f"snapshot {snapshot.hash[:12]}: {snapshot.files} files, {snapshot.bytes:,} bytes")
    _snapshot_warnings(wb, record["id"], snapshot, spec)
    _record_notes(wb, record["id"], git_notes)
    wb.store.add_event(record["id"], "queued", reason)
    wb.progress(f"run {record['id']} queued: {reason}")
    ensure_dispatcher(wb)
    return wb.store.get_run(record["id"]) | {"seq": seq}


def start(wb: Services, spec: ProjectSpec, exp: Experiment, values: dict[str, Any], executor_name: str, *,
          machine: str = "local", snapshot_hash: str | None = None, image_id: str | None = None,
          rerun_of: str | None = None, placement: Any = None, request: dict[str, Any] | None = None,
          priority: int = 0, from_folder: bool = False, session: dict[str, Any] | None = None) -> dict[str, Any]:
    """Records the run with its GPUs reserved (one transaction: no other run can take them), then launches
    it. `placement` is the choice of `launch` among several machines; without it the GPUs are picked on
    `machine` now. `from_folder`: launched from the project's folder, which is registered once the run is
    recorded (a rerun starts from a run's record: its folder may be gone, or its project removed).
    `session` ({"port": local port or None}): a JupyterLab session (services/sessions.py), not a run."""
    record, git_notes = new_record(wb, spec, exp, values, machine=machine, executor_name=executor_name,
                                   rerun_of=rerun_of, priority=priority, with_git=snapshot_hash is None,
                                   kind="session" if session is not None else "run")
    run_id = record["id"]
    if session is not None:  # its token, kept here only, before anything can launch it
        new_session_file(wb.dirs.run_dir(run_id), session.get("port"))
    if placement is not None:
        gpus, fields = placement.gpus, placement.fields(request or {})
    else:
        # Slurm picks a job's GPUs itself (--gres): nothing is picked or reserved here for it
        places_itself = wb.executors.declared(executor_name).places_gpus_itself
        gpus = pick_gpus(wb, exp.gpus, machine) if exp.gpus and not places_itself else None
        total = gpus.total if gpus and gpus.total else 0
        fields = {"hourly_cost": place.hourly_rate(wb, machine), "gpu_share": exp.gpus / total if total else 1.0}
        if gpus:
            fields.update(gpu_model=gpus.gpus[0].name, driver=gpus.driver)
    uuids = [g.uuid for g in gpus.gpus] if gpus else []
    # The launcher owns the run (from before it is recorded) until it is started, renewing its lease while
    # it builds or pulls: the reconciler leaves a slow launch alone, and adopts the container of a
    # launcher that died.
    launcher = new_owner()
    wb.store.acquire_lease(lease_name(run_id), launcher, LAUNCH_LEASE_TTL)
    try:
        with wb.store.tx():
            seq = wb.store.insert_run(record)
            if not wb.store.place_run(run_id, machine, uuids, fields):
                raise GpusTaken(f"GPU(s) {', '.join(u[:12] for u in uuids)} on {machine} were just taken by another run",
                                hint="try again")
    except BaseException:
        wb.store.release_lease(lease_name(run_id), launcher)
        raise
    if from_folder:
        register_launched(wb.store, spec)
    _record_notes(wb, run_id, git_notes)
    if placement is not None:
        wb.store.add_event(run_id, "placed", placement.reason)
    return launch_recorded(wb, run_id, seq, spec, exp, values, executor_name, machine, gpus, launcher,
                           snapshot_hash=snapshot_hash, image_id=image_id, rerun_of=rerun_of)


def launch_recorded(wb: Services, run_id: str, seq: int, spec: ProjectSpec, exp: Experiment, values: dict[str, Any],
                    executor_name: str, machine: str, gpus: GpuInventory | None, launcher: str, *,
                    snapshot_hash: str | None = None, image_id: str | None = None,
                    rerun_of: str | None = None) -> dict[str, Any]:
    """Snapshot (unless it has one), image, and the start on its executor, of a run recorded and placed,
    whose launch lease `launcher` holds."""
    keeper = LeaseKeeper(wb.store, lease_name(run_id), launcher, LAUNCH_LEASE_TTL, LAUNCH_LEASE_RENEW)
    try:
        run_exec, launch = prepare_launch(wb, run_id, spec, exp, values, executor_name, machine, gpus,
                                          snapshot_hash=snapshot_hash, image_id=image_id, rerun_of=rerun_of)
        handle = run_exec.submit(launch)
    except BaseException as exc:
        keeper.stop()
        launch_failed(wb, run_id, machine, launcher, exc)
        raise
    keeper.stop()
    mark_started(wb, run_exec, run_id, handle, launch.argv, executor_name, launcher)
    return wb.store.get_run(run_id) | {"seq": seq}


def prepare_launch(wb: Services, run_id: str, spec: ProjectSpec, exp: Experiment, values: dict[str, Any],
                   executor_name: str, machine: str, gpus: GpuInventory | None, *, snapshot_hash: str | None = None,
                   image_id: str | None = None, rerun_of: str | None = None) -> tuple[Executor, Launch]:
    """Everything up to the start: the snapshot where the run runs, its image, and its Launch (a session's:
    its working copy, its published port, the lab image; session_setup.py)."""
    lab = wb.store.get_run(run_id).get("kind") == "session"
    argv = substitute(exp.command, {**values, "run_id": run_id})
    env = run_env(exp, values, run_id)
    with snapshot_lock(wb.dirs.snapshots, exclusive=False):  # gc cannot remove it before it is recorded
        if snapshot_hash is None:
            snapshot = take_snapshot(spec.root, spec.exclude, wb.dirs.snapshots)
            snapshot_hash, snapshot_dir = snapshot.hash, snapshot.path
            wb.progress(f"snapshot {snapshot.hash[:12]}: {snapshot.files} files, {snapshot.bytes:,} bytes")
            _snapshot_warnings(wb, run_id, snapshot, spec)
        else:
            snapshot_dir = wb.dirs.snapshots / snapshot_hash
            if not snapshot_dir.is_dir():
                raise WorkbenchError(f"snapshot {snapshot_hash[:12]} of run {rerun_of} is gone (removed by gc?)")
        wb.store.update_run(run_id, snapshot=snapshot_hash)
        notebook_warnings(wb, run_id, snapshot_dir, exp, values)
        run_exec = wb.executors.get(machine, executor_name)
        host = run_exec.host
        # The run's working dir where it runs: the snapshot itself here; on a host, the same tree sent
        # there (only the files the host lacks), still under the lock: gc also frees hosts' snapshots
        where = str(snapshot_dir)
        if host.remote:
            from workbench.execution.remote_snapshot import send_snapshot
            where = send_snapshot(host.connection, wb.dirs.snapshots, snapshot_hash, host.root,
                                  wb.progress, is_dir=host.is_dir).path
    backend = wb.executors.declared(executor_name)
    image = None
    if backend.runs_in_image:
        image = image_id or wb._image_for(spec, exp, snapshot_dir, snapshot_hash, run_id, machine=machine)
        if exp.notebook and not image_id:  # (a rerun's recorded image is the one that ran it)
            image = runner_image(wb, image, machine=machine, run_id=run_id)  # (its own `image` event)
        elif lab and not image_id:
            image = lab_image(wb, image, machine=machine, run_id=run_id)
        wb.store.update_run(run_id, image=exp.image or exp.dockerfile, image_id=image)
    elif lab:
        raise WorkbenchError(docker_needed(machine))
    elif backend.takes_setup_line:  # a Slurm job
        warn(wb, run_id, f"{machine} is a Slurm cluster without a container runtime Workbench uses: the "
                         f"experiment runs as a process in its snapshot there, not in {exp.image or exp.dockerfile} "
                         "(its `setup` line can load modules or a venv; Apptainer/Pyxis are a later step)")
    elif exp.dockerfile or exp.image:
        wb.progress(f"process executor: running {argv[0]!r} on {'this machine' if machine == 'local' else machine}"
                    f", not in {exp.image or exp.dockerfile}")
    if exp.setup and not backend.takes_setup_line:
        warn(wb, run_id, f"`setup` ({exp.setup}) runs before the command in Slurm jobs only: not run on {machine}")
    check_mounts(exp, remote=host.remote)
    writable = [m.source for m in exp.mounts if not m.read_only]
    if _runs_as_root(exp.user) and writable and backend.runs_in_image:
        warn(wb, run_id, f"the container runs as root with writable host mounts ({', '.join(writable)}): "
                         "it can change or replace anything in them")
    wb.dirs.run_dir(run_id).mkdir(parents=True, exist_ok=True)  # here: logs.txt, fetched artifacts
    publish = None
    if lab:
        where, publish = prepare_session(wb.dirs.run_dir(run_id), host, host.run_dir(run_id), where, env)
    return run_exec, Launch(
        run_id=run_id, project=spec.name, argv=argv, env=env, snapshot_dir=where,
        run_dir=host.run_dir(run_id), image=image, gpu_ids=[g.uuid for g in gpus.gpus] if gpus else [],
        mounts=[(m.source, m.target, m.read_only) for m in exp.mounts], shm_size=exp.shm_size,
        memory=exp.memory, cpus=exp.cpus, user=None if exp.user == "root" else (exp.user or host.user()),
        gpus=exp.gpus, setup=exp.setup if backend.takes_setup_line else None, runtime_dir=runtime_dir(host),
        publish=publish, writable_workdir=lab,
    )


def launch_failed(wb: Services, run_id: str, machine: str, launcher: str, exc: BaseException) -> None:
    """A run that did not start: failed, saying why, its GPUs and launch lease given back."""
    if isinstance(exc, NoGpuRuntime):
        place.note_no_gpu_runtime(wb, machine, exc.message)
    reason = exc.message if isinstance(exc, WorkbenchError) else f"launch interrupted: {exc!r}"
    wb.store.finish_run(run_id, "failed", exit_code=None, reason=reason)
    wb.store.release_lease(lease_name(run_id), launcher)


def mark_started(wb: Services, run_exec: Executor, run_id: str, handle: Handle, argv: list[str],
                 executor_name: str, launcher: str) -> None:
    if not wb.store.mark_running(run_id, handle.to_record(), time.time()):
        run_exec.cancel(handle)  # cancelled while it was being prepared: do not leave it running
        run_exec.cleanup(handle)
        wb.store.finish_run(run_id, "cancelled", exit_code=None, reason="cancelled before it started")
    else:
        wb.store.add_event(run_id, "started", f"{executor_name}: {' '.join(argv)[:200]}")
    wb.store.release_lease(lease_name(run_id), launcher)


def check_mounts(exp: Experiment, remote: bool = False) -> None:
    """Again at launch (a rerun, or a folder that became a link since the spec was read). A mount on
    another machine is a path there: judged as written, never resolved here."""
    from workbench.projects.sensitive import remote_mount_reason, sensitive_mount_reason

    for mount in exp.mounts:
        judge = remote_mount_reason if remote else sensitive_mount_reason
        reason = None if exp.allow_sensitive_mounts else judge(mount.source)
        if reason:
            raise WorkbenchError(f"mount {mount.text} would give the container {reason}; refused",
                                 hint="set allow_sensitive_mounts = true in the experiment if you mean it")


def pick_gpus(wb: Services, count: int, machine: str = "local") -> GpuInventory:
    """`count` free GPUs of `machine`: idle in its telemetry now (no process, little memory and utilization)
    and not held by an active Workbench run there."""
    if machine == "local":
        inventory = wb.gpu_probe()
    else:
        from workbench.machines.remote import remote_gpu_inventory
        inventory = remote_gpu_inventory(wb.executors.connection(machine))
    taken = {uuid for _, uuid in wb.store.reserved_gpus(machine)}
    free = [g for g in inventory.gpus if not g.busy and g.uuid not in taken]
    if len(free) < count:
        held = sum(g.uuid in taken for g in inventory.gpus)
        busy = sum(g.busy and g.uuid not in taken for g in inventory.gpus)
        detail = inventory.error or (f"{len(inventory.gpus)} GPU(s): {held} held by Workbench runs, {busy} in use "
                                     "by other processes")
        raise WorkbenchError(f"the experiment needs {count} GPU(s) but machine {machine} has {len(free)} free "
                             f"({detail})", hint="set gpus = 0, free a GPU, pick another machine, or try again later")
    return GpuInventory(free[:count], driver=inventory.driver, total=len(inventory.gpus))


def rerun(wb: Services, ref: str, executor: str | None = None) -> dict[str, Any]:
    """An identical run: the stored snapshot, image id, params and experiment, not the folder as it is now."""
    import shlex

    from workbench.execution.images import local_image_id

    old = wb.store.get_run(ref)
    if old.get("kind") == "session":
        raise WorkbenchError(f"run {old['id']} is a JupyterLab session; a session is not rerun",
                             hint=f"open another: `workbench notebook {shlex.quote(old['project_path'])}`")
    again = f"`workbench run {shlex.quote(old['project_path'])}`"
    if not old.get("snapshot"):
        raise WorkbenchError(f"run {old['id']} never got a snapshot (its launch failed); nothing to rerun",
                             hint=f"run the project again: {again}")
    spec = ProjectSpec(name=old["project"], root=Path(old["project_path"]), exclude=[], experiments={})
    exp = experiment_from_record(old["spec"])
    machine = wb.executors.machine(old.get("machine") or "local")
    executor_name = choose_executor(wb, executor or old["executor"], machine)
    in_image = wb.executors.declared(executor_name).runs_in_image
    image_id = old.get("image_id") if in_image else None
    if in_image and not image_id:
        if exp.dockerfile and (old.get("status_reason") or "").startswith(f"building {exp.dockerfile} failed"):
            # Its snapshot holds the Dockerfile that failed: building it again fails again.
            raise WorkbenchError(f"run {old['id']} never got an image: building its {exp.dockerfile} failed "
                                 f"(`workbench runs logs {old['id']}` shows the build) and a rerun reuses its "
                                 "snapshot, that Dockerfile included",
                                 hint=f"fix the {exp.dockerfile} and run the project again: {again}")
        if not (exp.dockerfile or exp.image):
            raise WorkbenchError(f"run {old['id']} names no image or Dockerfile to run in",
                                 hint="rerun it with --executor process")
        # It never resolved one (a pull that failed, a launch interrupted, a process run): resolved now, the
        # Dockerfile built from the stored snapshot.
    elif in_image and exp.dockerfile and \
            local_image_id(wb.executors.docker_client_for(machine), image_id) is None:
        wb.progress(f"image {image_id.removeprefix('sha256:')[:12]} of run {old['id']} is no longer on the "
                    "engine (removed by `workbench gc`?); rebuilding it from the run's snapshot")
        image_id = None
    exp.env = unredacted_env(exp, Path(old["project_path"]))
    return start(wb, spec, exp, old["params"], executor_name, machine=machine,
                 snapshot_hash=old["snapshot"], image_id=image_id, rerun_of=old["id"])


def _runs_as_root(user: str | None) -> bool:
    """uid 0 however it is spelled, or this user's own uid:gid when that is root's."""
    if user is None:
        return os.getuid() == 0
    return user.split(":")[0] in ("root", "0")
