"""The facade both front ends use: launch, wait/follow, cancel, rerun, remove, gc, reconcile, doctor.

Blocking by design (Docker, SQLite, files): the CLI calls it directly, the TUI from worker threads.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from workbench.dirs import Dirs, resolve_dirs
from workbench.errors import EngineUnavailable, NotFound, WorkbenchError
from workbench.failures import is_engine_failure
from workbench.execution.base import Executor, Launch
from workbench.execution.ingest import PROGRESS_FILE, RunIngestor, lease_name, new_owner
from workbench.execution.lease_keeper import LeaseKeeper
from workbench.store.ingest import LeaseLost
from workbench.machines.gpus import GpuInventory, GpuProbe, nvml_inventory
from workbench.projects.snapshot import left_out_summary, remove_unreferenced, snapshot_lock, take_snapshot
from workbench.projects.spec import (
    Experiment, ProjectSpec, load_spec, parse_overrides, substitute, format_param,
)
from workbench.redaction import REDACTED, redact_env
from workbench.store import Store, open_store

if TYPE_CHECKING:
    from workbench.machines.hostkeys import HostKeyStore
    from workbench.machines.local import LocalSample
    from workbench.machines.ssh import SSHTarget
    from workbench.machines.telemetry import Fleet
    from workbench.watch_session import WatchSession

Progress = Callable[[str], None]
GIT_DIFF_LIMIT = 1 << 20
UNTRACKED_LISTED = 50  # untracked files named in a run's "git" event; the rest are counted
HISTORY_WINDOW = 300.0  # seconds of telemetry a restarted fleet view starts with
LAUNCH_LEASE_TTL = 20.0  # a launcher renews its hold on a run while it builds or pulls; a dead one lets go
LAUNCH_LEASE_RENEW = 2.0
ENGINE_RETRY_MAX = 5.0


def _quiet(_: str) -> None:
    pass


class Workbench:
    def __init__(self, dirs: Dirs | None = None, *, gpu_probe: GpuProbe = nvml_inventory,
                 progress: Progress = _quiet) -> None:
        self.dirs = (dirs or resolve_dirs()).ensure()
        self.gpu_probe = gpu_probe
        self.progress = progress
        self._store: Store | None = None
        self._docker: Any = None
        self._docker_error: EngineUnavailable | None = None
        self._reconciled_at = float("-inf")
        self._said: set[str] = set()

    # plumbing -------------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.dirs.db_path)
            self._store.ensure_machine("local", "local")
        return self._store

    def docker_client(self) -> Any:
        if self._docker is None and self._docker_error is None:
            from workbench.execution.engine import connect
            try:
                self._docker = connect()
            except EngineUnavailable as exc:
                self._docker_error = exc
        if self._docker_error is not None:
            raise self._docker_error
        return self._docker

    def executor(self, name: str) -> Executor:
        if name == "docker":
            from workbench.execution.docker_executor import DockerExecutor
            return DockerExecutor(self.docker_client(), self.store.instance)
        if name == "process":
            from workbench.execution.process_executor import ProcessExecutor
            return ProcessExecutor(self.dirs.runs)
        raise WorkbenchError(f"unknown executor {name!r}", hint="use docker or process")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._docker is not None:
            self._docker.close()

    # projects -------------------------------------------------------------------------------------
    def add_project(self, path: str) -> ProjectSpec:
        spec = load_spec(path)
        for existing in self.store.projects():
            if existing["name"] == spec.name and existing["path"] != str(spec.root):
                raise WorkbenchError(f"a project named {spec.name!r} is already registered at {existing['path']}",
                                     hint="rename one of them in [project] name, or remove the other first")
        self.store.add_project(spec.name, str(spec.root))
        return spec

    def remove_project(self, name_or_path: str) -> None:
        path = str(Path(name_or_path).expanduser().resolve()) if os.sep in name_or_path else name_or_path
        if not (self.store.remove_project(name_or_path) or self.store.remove_project(path)):
            raise NotFound(f"no registered project {name_or_path!r}", hint="see `workbench projects list`")

    def projects(self) -> list[dict[str, Any]]:
        out = []
        for project in self.store.projects():
            try:
                spec = load_spec(project["path"])
                project = {**project, "experiments": sorted(spec.experiments), "error": None}
            except WorkbenchError as exc:
                project = {**project, "experiments": [], "error": str(exc)}
            out.append(project)
        return out

    # machines -------------------------------------------------------------------------------------
    def hostkeys(self) -> "HostKeyStore":
        from workbench.machines.hostkeys import HostKeyStore
        return HostKeyStore(self.dirs.known_hosts)

    def machine_target(self, name: str) -> "SSHTarget":
        from workbench.machines.ssh import target_from_dict
        machine = self.store.get_machine(name)
        if machine is None:
            raise NotFound(f"no machine {name!r}", hint="see `workbench machines list`")
        if machine["kind"] != "ssh":
            raise WorkbenchError(f"{name} is this workstation, not an SSH host")
        return target_from_dict(machine["config"]["target"])

    def add_machine(self, name: str, ssh: str | None = None, identity: str | None = None,
                    hourly_cost: float | None = None, jump: str | None = None) -> dict[str, Any]:
        """Records an SSH host (from `[user@]host[:port]`, or NAME's ~/.ssh/config entry) and reports
        whether its host key is known. Nothing is trusted here."""
        from workbench.machines.ssh import SSHError, fetch_host_key, target_to_dict
        from workbench.machines.ssh_config import host_aliases, load_ssh_config, parse_address, target_from_config

        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name) or name == "local":
            raise WorkbenchError(f"machine name {name!r}: use letters, digits, '.', '_', '-' (and not `local`)")
        if hourly_cost is not None and hourly_cost < 0:
            raise WorkbenchError("--hourly-cost must be zero or more")
        config = load_ssh_config()
        try:
            if ssh:
                target = parse_address(ssh, name=name, config=config)
            elif name in host_aliases(config):
                target = target_from_config(name, config)
            else:
                raise WorkbenchError(f"{name} is not a Host in ~/.ssh/config", hint="pass --ssh [user@]host[:port]")
            if jump:
                target.jump = parse_address(jump, name=f"{name}-jump", config=config)
        except ValueError as exc:
            raise WorkbenchError(f"--ssh {exc}") from None
        if identity:
            path = Path(identity).expanduser()
            if not path.is_file():
                raise WorkbenchError(f"identity file {path} does not exist")
            target.identity_files = [str(path.resolve())]
            hop = target.jump
            while hop is not None:  # a jump host without its own key setting uses the same key
                hop.identity_files = hop.identity_files or target.identity_files
                hop = hop.jump
        self.store.add_machine(name, "ssh", target.address,
                               {"target": target_to_dict(target), "hourly_cost": hourly_cost})
        try:
            key = fetch_host_key(target, self.hostkeys())
            verdict = self.hostkeys().check(target.hostname, target.port, key)
            state = {"known": "host key known", "unknown": "host key unknown", "changed": "host key changed"}[verdict.state]
            return {"name": name, "address": target.address, "state": state, "key_type": verdict.key_type,
                    "fingerprint": verdict.fingerprint}
        except (SSHError, WorkbenchError) as exc:
            return {"name": name, "address": target.address, "state": getattr(exc, "state", "unreachable"),
                    "error": str(exc)}

    def remove_machine(self, name: str) -> None:
        if name == "local":
            raise WorkbenchError("`local` is this workstation; it cannot be removed")
        if not self.store.remove_machine(name):
            raise NotFound(f"no machine {name!r}", hint="see `workbench machines list`")

    def list_machines(self) -> list[dict[str, Any]]:
        out = []
        for machine in self.store.machines():
            config = json.loads(machine["config"]) if isinstance(machine["config"], str) else machine["config"]
            out.append({"name": machine["name"], "kind": machine["kind"], "address": machine["address"] or "this workstation",
                        "hourly_cost": config.get("hourly_cost")})
        return out

    def trust_machine(self, name: str, fingerprint: str | None = None,
                      confirm: Callable[[str], bool] | None = None) -> dict[str, Any]:
        """Trusts the key NAME presents now: it must match `fingerprint`, or the user confirms it on seeing
        it. A changed key is refused."""
        from workbench.machines.ssh import HostKeyChanged, fetch_host_key

        target = self.machine_target(name)
        store = self.hostkeys()
        key = fetch_host_key(target, store)
        verdict = store.check(target.hostname, target.port, key)
        if verdict.state == "changed":
            raise HostKeyChanged(name, verdict)
        result = {"name": name, "key_type": verdict.key_type, "fingerprint": verdict.fingerprint}
        if verdict.state == "known":
            return {**result, "trusted": True, "already": True}
        if fingerprint is not None:
            if fingerprint.strip() != verdict.fingerprint:
                raise WorkbenchError(f"{name} presents {verdict.key_type} {verdict.fingerprint}, not {fingerprint}; "
                                     "not trusted")
        elif confirm is None or not confirm(f"{name} ({verdict.entry}) presents {verdict.key_type} "
                                            f"{verdict.fingerprint}. Trust it?"):
            raise WorkbenchError(f"{name}: host key not trusted", hint="compare the fingerprint, then confirm it or "
                                                                       "pass --fingerprint SHA256:...")
        store.trust(target.hostname, target.port, key)
        return {**result, "trusted": True, "already": False}

    def fleet(self, interval_ms: int = 1000) -> "Fleet | None":
        """Live telemetry samplers for every registered SSH machine (not started); None without any, so
        paramiko is not even imported."""
        configs = [json.loads(m["config"]) for m in self.store.machines() if m["kind"] == "ssh"]
        if not configs:
            return None
        from workbench.machines.ssh import target_from_dict
        from workbench.machines.telemetry import Fleet

        targets = [target_from_dict(config["target"]) for config in configs]
        store = self.store
        window = HISTORY_WINDOW

        def history(name: str) -> dict[int, list[tuple]]:
            return store.telemetry_since(name, time.time() - window)
        return Fleet(targets, self.hostkeys(), interval_ms, recorder=store.add_telemetry, history=history)

    def machine_stats(self, name: str) -> dict[str, Any]:
        """One telemetry sample of a machine."""
        if name == "local":
            sample = self.local_machine()
            return {"name": "local", "cpus": sample.cpus, "load": list(sample.load),
                    "memory_used": sample.memory_used, "memory_total": sample.memory_total,
                    "gpus": [asdict(g) for g in sample.gpus.gpus], "gpu_error": sample.gpus.error}
        from workbench.machines.remote import sample_remote
        from workbench.machines.ssh import Connection

        connection = Connection(self.machine_target(name), self.hostkeys())
        try:
            sample = sample_remote(connection)
        finally:
            connection.close()
        return {"name": name, **asdict(sample)}

    # launching ------------------------------------------------------------------------------------
    def choose_executor(self, requested: str | None) -> str:
        if requested:
            if requested == "docker":
                self.docker_client()  # a clear error now if there is no engine
            return requested
        try:
            self.docker_client()
            return "docker"
        except EngineUnavailable as exc:
            self.progress(f"{exc.message}: running with the process executor instead (--executor process)")
            return "process"

    def launch(self, path: str, experiment: str | None = None, overrides: list[str] | None = None, *,
               machine: str = "local", executor: str | None = None) -> dict[str, Any]:
        if machine not in ("local", "auto"):
            raise WorkbenchError(f"no machine {machine!r} is available to run on",
                                 hint="only `local` runs experiments in this version")
        spec = load_spec(path)
        exp = spec.experiment(experiment)
        values = {**exp.params, **parse_overrides(exp, overrides or [], str(spec.spec_path))}
        executor_name = self.choose_executor(executor)
        return self._start(spec, exp, values, executor_name)

    def _start(self, spec: ProjectSpec, exp: Experiment, values: dict[str, Any], executor_name: str, *,
               snapshot_hash: str | None = None, image_id: str | None = None,
               rerun_of: str | None = None) -> dict[str, Any]:
        run_id = secrets.token_hex(4)
        while self.store.query("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            run_id = secrets.token_hex(4)
        argv = substitute(exp.command, {**values, "run_id": run_id})  # {output}: the executor puts it in
        # Python block-buffers stdout that is not a terminal: without this, live logs stay empty and a
        # cancelled run loses what it printed. The spec's env may still say otherwise.
        env = {"PYTHONUNBUFFERED": "1", **exp.env,
               **{f"WB_PARAM_{k.upper()}": format_param(v) for k, v in values.items()}, "WORKBENCH_RUN_ID": run_id}
        gpus = self._pick_gpus(exp.gpus) if exp.gpus else None
        git = _git_state(spec.root, spec.exclude) if snapshot_hash is None else {}
        git_notes = git.pop("notes", [])  # (kind, message): events once the run is recorded
        record = {
            "id": run_id, "project": spec.name, "project_path": str(spec.root), "experiment": exp.name,
            "status": "queued", "machine": "local", "executor": executor_name, "created_at": time.time(),
            "params": values, "argv": argv, "env": redact_env(env), "rerun_of": rerun_of,
            "spec": _spec_record(exp), **git,
        }
        if gpus:
            record.update(gpu_uuids=[g.uuid for g in gpus.gpus], gpu_model=gpus.gpus[0].name, driver=gpus.driver)
        # The launcher owns the run (from before it is recorded) until it is started, renewing its lease while
        # it builds or pulls: the reconciler leaves a slow launch alone, and adopts the container of a
        # launcher that died.
        launcher = new_owner()
        self.store.acquire_lease(lease_name(run_id), launcher, LAUNCH_LEASE_TTL)
        seq = self.store.insert_run(record)
        for kind, note in git_notes:
            if kind == "warning":
                self._warn(run_id, note)
            else:
                self.store.add_event(run_id, kind, note)
        keeper = LeaseKeeper(self.store, lease_name(run_id), launcher, LAUNCH_LEASE_TTL, LAUNCH_LEASE_RENEW)
        try:
            with snapshot_lock(self.dirs.snapshots, exclusive=False):  # gc cannot remove it before it is recorded
                if snapshot_hash is None:
                    snapshot = take_snapshot(spec.root, spec.exclude, self.dirs.snapshots)
                    snapshot_hash, snapshot_dir = snapshot.hash, snapshot.path
                    self.progress(f"snapshot {snapshot.hash[:12]}: {snapshot.files} files, {snapshot.bytes:,} bytes")
                    if snapshot.left_out:
                        self._warn(run_id, "snapshot " + left_out_summary(snapshot.left_out))
                else:
                    snapshot_dir = self.dirs.snapshots / snapshot_hash
                    if not snapshot_dir.is_dir():
                        raise WorkbenchError(f"snapshot {snapshot_hash[:12]} of run {rerun_of} is gone (removed by gc?)")
                self.store.update_run(run_id, snapshot=snapshot_hash)
            run_exec = self.executor(executor_name)
            image = None
            if executor_name == "docker":
                image = image_id or self._image_for(spec, exp, snapshot_dir, snapshot_hash, run_id)
                self.store.update_run(run_id, image=exp.image or exp.dockerfile, image_id=image)
            elif exp.dockerfile or exp.image:
                self.progress(f"process executor: running {argv[0]!r} on this machine, not in "
                              f"{exp.image or exp.dockerfile}")
            self._check_mounts(exp)
            writable = [m.source for m in exp.mounts if not m.read_only]
            if _runs_as_root(exp.user) and writable and executor_name == "docker":
                self._warn(run_id, f"the container runs as root with writable host mounts ({', '.join(writable)}): "
                                   "it can change or replace anything in them")
            run_dir = self.dirs.run_dir(run_id)
            run_dir.mkdir(parents=True, exist_ok=True)
            launch = Launch(
                run_id=run_id, project=spec.name, argv=argv, env=env, snapshot_dir=snapshot_dir,
                run_dir=run_dir, image=image, gpu_ids=[g.uuid for g in gpus.gpus] if gpus else [],
                mounts=[(m.source, m.target, m.read_only) for m in exp.mounts], shm_size=exp.shm_size,
                memory=exp.memory, user=None if exp.user == "root" else (exp.user or f"{os.getuid()}:{os.getgid()}"),
            )
            handle = run_exec.submit(launch)
        except BaseException as exc:
            keeper.stop()
            reason = exc.message if isinstance(exc, WorkbenchError) else f"launch interrupted: {exc!r}"
            self.store.finish_run(run_id, "failed", exit_code=None, reason=reason)
            self.store.release_lease(lease_name(run_id), launcher)
            raise
        keeper.stop()
        if not self.store.mark_running(run_id, handle, time.time()):
            run_exec.cancel(handle)  # cancelled while it was being prepared: do not leave it running
            run_exec.cleanup(handle)
            self.store.finish_run(run_id, "cancelled", exit_code=None, reason="cancelled before it started")
        else:
            self.store.add_event(run_id, "started", f"{executor_name}: {' '.join(argv)[:200]}")
        self.store.release_lease(lease_name(run_id), launcher)
        return self.store.get_run(run_id) | {"seq": seq}

    def _check_mounts(self, exp: Experiment) -> None:
        """Again at launch (a rerun, or a folder that became a link since the spec was read)."""
        from workbench.projects.sensitive import sensitive_mount_reason

        for mount in exp.mounts:
            reason = None if exp.allow_sensitive_mounts else sensitive_mount_reason(mount.source)
            if reason:
                raise WorkbenchError(f"mount {mount.text} would give the container {reason}; refused",
                                     hint="set allow_sensitive_mounts = true in the experiment if you mean it")

    def _warn(self, run_id: str, message: str) -> None:
        """Said to the user now and kept with the run."""
        self.progress(f"warning: {message}")
        self.store.add_event(run_id, "warning", message)

    def _image_for(self, spec: ProjectSpec, exp: Experiment, snapshot_dir: Path, snapshot_hash: str,
                   run_id: str | None = None) -> str:
        """The image id for the run: `exp.image` from the engine (pulled if missing), or `exp.dockerfile` built
        from the snapshot as workbench/<project>:<snapshot hash>, labelled with this data dir's instance (so
        `gc` knows it built it). The build output is kept with the run: runs/<id>/build.log when it succeeds;
        when it fails, as the run's logs.txt (`workbench runs logs ID`), which is safe to write here because a
        run whose build failed never gets a container, so no ingestion ever appends to or cuts that file."""
        from workbench.execution import images
        from workbench.execution.logformat import format_line, now_stamp

        client = self.docker_client()

        def sized(ref: str, image_id: str) -> str:
            """Its size kept with the run (an `image` event), so `runs show` says it without an engine."""
            if run_id is not None:
                try:
                    size = images.image_size(client, image_id)
                except Exception:  # noqa: BLE001 - only a record; the launch says what is wrong with the engine
                    return image_id
                self.store.add_event(run_id, images.IMAGE_EVENT, images.image_event(ref, image_id, size))
            return image_id

        if not exp.dockerfile:
            return sized(exp.image or "", images.ensure_image(client, exp.image or "", self.progress))
        tag = f"workbench/{spec.name.lower()}:{snapshot_hash[:16]}"
        lines: list[bytes] = []
        if images.local_image_id(client, tag) is None:
            # Before the first build of this Dockerfile's content (once: not again when its image exists, nor
            # for a later build of the same Dockerfile, which an earlier run's warning already names).
            advice = images.torch_advice(snapshot_dir, exp.dockerfile)
            if advice:
                import hashlib
                try:
                    digest = hashlib.sha256((snapshot_dir / exp.dockerfile).read_bytes()).hexdigest()[:12]
                except OSError:
                    digest = snapshot_hash[:12]
                advice += f" (said once for this {exp.dockerfile}, content {digest})"
                said = self.store.query("SELECT 1 FROM events WHERE kind = 'warning' AND message = ? LIMIT 1",
                                        (advice,))
                if not said:
                    if run_id is not None:
                        self._warn(run_id, advice)
                    else:
                        self.progress(f"warning: {advice}")

        def keep(name: str) -> None:
            if run_id is not None and lines:
                run_dir = self.dirs.run_dir(run_id)
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / name).write_bytes(b"".join(lines))

        try:
            image_id = images.build(
                client, snapshot_dir, exp.dockerfile, tag, self.progress,
                log=lambda stream, text: lines.append(format_line(now_stamp(), stream, text.encode())),
                labels={images.INSTANCE_LABEL: self.store.instance, "workbench.project": spec.name})
        except images.BuildFailed as exc:
            if run_id is None:
                raise
            keep("logs.txt")
            raise WorkbenchError(exc.message, hint=f"its build output is the run's log: `workbench runs logs {run_id}`"
                                 ) from None
        if run_id is not None and lines:
            keep("build.log")
            self.store.add_event(run_id, "build", f"built {tag}: {len(lines)} lines of build output in build.log")
        return sized(tag, image_id)

    def _pick_gpus(self, count: int) -> GpuInventory:
        inventory = self.gpu_probe()
        taken = set()
        for run in self.store.active_runs():
            taken.update(run.get("gpu_uuids") or [])
        free = [g for g in inventory.gpus if not g.busy and g.uuid not in taken]
        if len(free) < count:
            detail = inventory.error or f"{len(inventory.gpus)} GPU(s), {len(free)} free"
            raise WorkbenchError(f"the experiment needs {count} GPU(s) but machine local has {len(free)} free "
                                 f"({detail})", hint="set gpus = 0, free a GPU, or try again later")
        return GpuInventory(free[:count], driver=inventory.driver)

    def rerun(self, ref: str, executor: str | None = None) -> dict[str, Any]:
        """An identical run: the stored snapshot, image id, params and experiment, not the folder as it is now."""
        import shlex

        from workbench.execution.images import local_image_id

        old = self.store.get_run(ref)
        again = f"`workbench run {shlex.quote(old['project_path'])}`"
        if not old.get("snapshot"):
            raise WorkbenchError(f"run {old['id']} never got a snapshot (its launch failed); nothing to rerun",
                                 hint=f"run the project again: {again}")
        spec = ProjectSpec(name=old["project"], root=Path(old["project_path"]), exclude=[], experiments={})
        exp = _experiment_from_record(old["spec"])
        executor_name = self.choose_executor(executor or old["executor"])
        image_id = old.get("image_id") if executor_name == "docker" else None
        if executor_name == "docker" and not image_id:
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
        elif executor_name == "docker" and exp.dockerfile and local_image_id(self.docker_client(), image_id) is None:
            self.progress(f"image {image_id.removeprefix('sha256:')[:12]} of run {old['id']} is no longer on the "
                          "engine (removed by `workbench gc`?); rebuilding it from the run's snapshot")
            image_id = None
        exp.env = _unredacted_env(exp, Path(old["project_path"]))
        return self._start(spec, exp, old["params"], executor_name, snapshot_hash=old["snapshot"],
                           image_id=image_id, rerun_of=old["id"])

    # watching -------------------------------------------------------------------------------------
    def watch(self, path: str, say: Callable[[str], None], *, polling: bool = False,
              debounce: float | None = None) -> "WatchSession":
        """Starts watching a project per its [watch] table; `say` gets a line per trigger and verdict."""
        from workbench.watch_session import WatchSession

        spec = load_spec(path)
        if spec.watch is None:
            raise WorkbenchError(f"{spec.spec_path}: no [watch] table", hint="add [watch] with run = \"EXPERIMENT\"")
        return WatchSession(self, spec, say, polling=polling, debounce=debounce).start()

    # following ------------------------------------------------------------------------------------
    def ingestor(self, run: dict[str, Any]) -> RunIngestor:
        return RunIngestor(self.store, self.executor(run["executor"]), run, self.dirs.run_dir(run["id"]))

    def wait(self, ref: str, sink: Callable[[bytes], None] | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Follows a run to its end, ingesting live (taking over from a background follower if needed);
        keeps following through an engine restart."""
        run = self.store.get_run(ref)
        delay, engine_lost = 0.5, False
        while run["status"] in ("queued", "running"):
            try:
                ingestor = self.ingestor(run)
                if run.get("handle") and ingestor.acquire():
                    try:
                        ingestor.follow(sink=sink, progress=progress)
                    except LeaseLost:
                        pass  # another process took over; keep waiting for its verdict
                    finally:
                        ingestor.release()
                else:
                    time.sleep(0.2)  # another process is ingesting it; wait for its verdict
                if engine_lost:
                    self.progress(f"the Docker engine answers again; following run {run['id']}")
                    delay, engine_lost = 0.5, False
            except Exception as exc:  # noqa: BLE001 - only an engine that stopped answering is waited out
                if not is_engine_failure(exc):
                    raise
                if not engine_lost:
                    self.progress(f"the Docker engine stopped answering ({_first_line(exc)}); waiting for it to "
                                  "come back (Ctrl-C stops waiting; the run is left as it is)")
                engine_lost = True
                self._forget_engine()
                time.sleep(delay)
                delay = min(delay * 2, ENGINE_RETRY_MAX)
            run = self.store.get_run(run["id"])
        return run

    def _forget_engine(self) -> None:
        """The next use connects again (the engine restarted, or was down when we last tried)."""
        docker, self._docker, self._docker_error = self._docker, None, None
        if docker is not None:
            try:
                docker.close()
            except Exception:  # noqa: BLE001
                pass

    def follow_in_background(self, run_id: str) -> None:
        """A detached process that ingests the run until it ends, so history fills in without the CLI."""
        subprocess.Popen(
            [sys.executable, "-m", "workbench", "_follow", run_id], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(self.dirs.run_dir(run_id) / "follower.err", "ab"),
            start_new_session=True, close_fds=True, env={**os.environ, "WORKBENCH_HOME": str(self.dirs.data)}
            if self.dirs.data == self.dirs.config else None,
        )

    def logs(self, ref: str, follow: bool = False, poll: float = 0.2,
             on_progress: Callable[[str], None] | None = None) -> Iterator[bytes]:
        """Stored log lines; with `follow`, new lines as they are ingested, until the run ends, and the line
        the run is redrawing (its progress bar) handed to `on_progress` whenever it changes ("" when gone)."""
        run = self.store.get_run(ref)
        path = self.dirs.run_dir(run["id"]) / "logs.txt"
        position = 0
        shown = ""
        while True:
            if follow and run["status"] in ("queued", "running"):
                self._ingest_if_unowned(run)
            try:
                with open(path, "rb") as fh:
                    fh.seek(position)
                    data = fh.read()
            except FileNotFoundError:
                data = b""
            cut = data.rfind(b"\n") + 1
            if cut:
                position += cut
                yield data[:cut]
            if not follow:
                return
            run = self.store.get_run(run["id"])
            if on_progress is not None:
                line = self.progress_line(run["id"]) or ""
                if line != shown:
                    shown = line
                    on_progress(line)
            if run["status"] not in ("queued", "running") and not cut:
                return
            if not cut:
                time.sleep(poll)

    def progress_line(self, ref: str) -> str | None:
        """The line a live run is redrawing right now (a tqdm bar: text after the last newline, as a terminal
        shows it), kept by whoever follows the run; None when there is none. Never stored in the history."""
        run = self.store.get_run(ref)
        if run["status"] not in ("queued", "running"):
            return None
        try:
            text = (self.dirs.run_dir(run["id"]) / PROGRESS_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        return text or None

    def _ingest_if_unowned(self, run: dict[str, Any]) -> None:
        if not run.get("handle") or self._lease_held(run["id"]):
            return  # still being launched, or followed live by another process
        ingestor = self.ingestor(run)
        if ingestor.acquire():
            try:
                ingestor.catch_up()
            except LeaseLost:
                pass
            finally:
                ingestor.release()

    # control --------------------------------------------------------------------------------------
    def cancel(self, ref: str) -> dict[str, Any]:
        """Stops a run; one that already ended is reported as it is (not an error: it is stopped). A run
        still being launched is stopped by its launcher; one whose launcher died is adopted, then stopped."""
        run = self.store.get_run(ref)
        if run["status"] not in ("queued", "running"):
            return run
        self.store.update_run(run["id"], cancel_requested=1)
        if not run.get("handle") and self._lease_held(run["id"]):
            # still building or pulling: recorded now; its launcher stops whatever it starts
            self.store.finish_run(run["id"], "cancelled", exit_code=None, reason="cancelled while it was launched")
            return self.store.get_run(run["id"])
        stopped = False
        deadline = time.monotonic() + LAUNCH_LEASE_TTL + 15
        while run["status"] in ("queued", "running") and time.monotonic() < deadline:
            if run.get("handle"):
                if not stopped:
                    self.executor(run["executor"]).cancel(run["handle"])
                    stopped = True
                self._ingest_if_unowned(run)
            elif not self._lease_held(run["id"]):  # its launcher died
                if self._adopt(run) is None:
                    self.store.finish_run(run["id"], "cancelled", exit_code=None, reason="cancelled before it started")
                run = self.store.get_run(run["id"])
                continue  # adopted: stopped on the next pass
            time.sleep(0.1)
            run = self.store.get_run(run["id"])
        return run

    def remove(self, ref: str, force: bool = False) -> str:
        run = self.store.get_run(ref)
        if run["status"] in ("queued", "running"):
            if not force:
                raise WorkbenchError(f"run {run['id']} is {run['status']}", hint="cancel it first, or use --force")
            self.cancel(run["id"])
        if run.get("handle"):
            try:
                self.executor(run["executor"]).cleanup(run["handle"])
            except EngineUnavailable:
                pass
        self.store.delete_run(run["id"])
        shutil.rmtree(self.dirs.run_dir(run["id"]), ignore_errors=True)
        return run["id"]

    def gc(self) -> dict[str, Any]:
        """Reclaims snapshots no run references, run dirs no run record owns, containers of ours that no
        active run owns (left by an interrupted launch), and the images built for Dockerfile experiments that
        no run needs any more (see `_remove_unneeded_images`). Without an engine, containers and images are
        left as they are, with a note in `notes`; the files are reclaimed all the same."""
        self.store.downsample_telemetry()
        with snapshot_lock(self.dirs.snapshots, exclusive=True):  # no launch is between snapshot and record
            keep = self.store.referenced_snapshots()
            snapshots, freed = remove_unreferenced(self.dirs.snapshots, keep)
        known = self.store.all_run_ids()
        orphans = 0
        for entry in self.dirs.runs.iterdir() if self.dirs.runs.is_dir() else []:
            if entry.is_dir() and entry.name not in known:
                freed += sum(f.lstat().st_size for f in entry.rglob("*") if f.is_file() and not f.is_symlink())
                shutil.rmtree(entry, ignore_errors=True)
                orphans += 1
        containers = images_removed = 0
        notes: list[str] = []
        try:
            containers = self._remove_orphan_containers()
            images_removed, image_bytes = self._remove_unneeded_images()
            freed += image_bytes
        except Exception as exc:  # noqa: BLE001 - no engine (or one that stopped answering) never fails gc
            if not (isinstance(exc, EngineUnavailable) or is_engine_failure(exc)):
                raise
            why = (exc.message if isinstance(exc, EngineUnavailable)
                   else f"the Docker engine stopped answering ({_first_line(exc)})")
            notes.append(f"{why}: containers and images were left as they are (and not measured)")
        images_left = image_disk = None
        if not notes:  # what Workbench's images still take, once cleaned (None: the engine did not answer)
            from workbench.execution import images
            try:
                recorded = {r[0] for r in self.store.query("SELECT DISTINCT image_id FROM runs WHERE image_id IS NOT NULL")}
                images_left, image_disk, _ = images.disk_usage(self.docker_client(), self.store.instance, recorded)
            except Exception as exc:  # noqa: BLE001 - as above
                if not (isinstance(exc, EngineUnavailable) or is_engine_failure(exc)):
                    raise
                notes.append(f"the Docker engine stopped answering ({_first_line(exc)}): images not measured")
        return {"snapshots_removed": snapshots, "run_dirs_removed": orphans, "containers_removed": containers,
                "images_removed": images_removed, "bytes_freed": freed, "notes": notes,
                "images_left": images_left, "image_disk_bytes": image_disk}

    def _remove_orphan_containers(self) -> int:
        from workbench.execution.docker_executor import DockerExecutor

        executor = self.executor("docker")
        assert isinstance(executor, DockerExecutor)
        found = executor.list({"workbench.instance": self.store.instance, "workbench.kind": "run"})
        active = {run["id"] for run in self.store.active_runs()}  # read after the listing: see DockerExecutor
        return executor.remove_orphans(found, active)

    def _remove_unneeded_images(self) -> tuple[int, int]:
        """(images removed, bytes freed). Candidates are the images Workbench built for this data dir (tagged
        workbench/<project>:<snapshot hash> and labelled with its instance, or recorded by one of its runs);
        an image another data dir, the user or anything else built is never touched. Kept: the image of every
        active run, of every run an active run reruns, of one still being built (its tag names the snapshot of
        an active run), and of the newest run of each project/experiment that got one, so the latest build stays
        ready. Older runs' images go: `runs rerun` of such a run rebuilds its image from the run's snapshot
        (which gc keeps while any run references it). No deployments are recorded in this version; when the
        registry records them, their images join the kept set. An image a container uses stays."""
        from workbench.execution import images

        client = self.docker_client()
        recorded = {r[0] for r in self.store.query("SELECT DISTINCT image_id FROM runs WHERE image_id IS NOT NULL")}
        # Listed before the runs are read: a launch records its snapshot before it builds, and its image id
        # before it starts, so an image listed here that a launch needs is seen as needed below.
        candidates = images.built_images(client, self.store.instance, recorded)
        if not candidates:
            return 0, 0
        keep: set[str] = set()
        building: set[str] = set()
        newest: dict[tuple[str, str], str] = {}
        active = self.store.active_runs()
        reruns_of = {run["rerun_of"] for run in active if run.get("rerun_of")}
        for run in active:
            keep.add(run.get("image_id") or "")
            building.add((run.get("snapshot") or "")[:16])
        for run_id, project, experiment, image_id in self.store.query(
                "SELECT id, project, experiment, image_id FROM runs WHERE image_id IS NOT NULL ORDER BY seq"):
            newest[(project, experiment)] = image_id
            if run_id in reruns_of:
                keep.add(image_id)
        keep.update(newest.values())
        doomed = {image_id: tags for image_id, tags in candidates.items()
                  if image_id not in keep and not any(tag.rsplit(":", 1)[1] in building for tag in tags)}
        return images.remove_images(client, doomed)

    # reconciliation -------------------------------------------------------------------------------
    def reconcile_if_stale(self, max_age: float = 2.0) -> None:
        """For screens that refresh often: one reconcile per `max_age` seconds, however many ask."""
        if time.monotonic() - self._reconciled_at >= max_age:
            self.reconcile()

    def reconcile(self) -> list[dict[str, Any]]:
        """Brings every run recorded as active up to date with what its executor reports: a run whose
        launcher died after starting it is adopted by its labels; one that never started is lost."""
        self._reconciled_at = time.monotonic()
        changed = []
        engine_used = False
        for run in self.store.active_runs():
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
                self._remove_orphan_containers()
            except Exception as exc:  # noqa: BLE001 - tidying up never fails a reconcile: said once
                self._say_once(f"leftover containers not removed: {_first_line(exc)}")
        return changed

    def _reconcile_one(self, run: dict[str, Any]) -> str | None:
        """Brings one run up to date: its new final state, "docker" when it is still running there, or None."""
        if self._lease_held(run["id"]):
            return None  # someone is launching or following it live
        adopted = False
        try:
            if not run.get("handle"):
                found = self._adopt(run)
                if found is None:
                    self.store.finish_run(run["id"], "lost", exit_code=None,
                                          reason="its launch was interrupted before the run started")
                    return "lost"
                run, adopted = found, True
            ingestor = self.ingestor(run)
        except EngineUnavailable as exc:
            self._say_once(f"{exc.message}; its runs are shown as last recorded")
            return None  # cannot tell; keep the record as it is
        if not ingestor.acquire():
            return None
        try:
            state = ingestor.catch_up()
        except LeaseLost:
            return None
        except Exception as exc:  # noqa: BLE001 - an engine gone mid-way leaves the record as it is
            if not is_engine_failure(exc):
                raise
            self._say_once(f"the Docker engine stopped answering ({_first_line(exc)}); "
                           "its runs are shown as last recorded")
            return None
        finally:
            ingestor.release()
        if state.state != "running":
            return state.state
        if adopted:
            self.follow_in_background(run["id"])  # its own follower died with its launcher
        return "docker" if run["executor"] == "docker" else None

    def _note_failure(self, run_id: str, exc: BaseException) -> None:
        """A run that could not be reconciled keeps its record; why is said once, as its event."""
        from workbench.failures import explain

        why = exc.message if isinstance(exc, WorkbenchError) else explain(exc) or _first_line(exc)
        message = f"could not be brought up to date: {why}"
        events = self.store.events(run_id)
        if not events or events[-1]["message"] != message:
            self.store.add_event(run_id, "warning", message)
            self._say_once(f"run {run_id} {message}")

    def _adopt(self, run: dict[str, Any]) -> dict[str, Any] | None:
        """The run's container (or process) found by its labels, recorded as running; None when it
        never started. EngineUnavailable when that cannot be told."""
        handle = self.executor(run["executor"]).adopt(run["id"], self.dirs.run_dir(run["id"]))
        if handle is None:
            return None
        if self.store.mark_running(run["id"], handle, time.time(), adopted=True):
            self.store.add_event(run["id"], "adopted", "its launcher stopped before recording the start; "
                                                       "found by its labels and followed from here")
        return self.store.get_run(run["id"])

    def _lease_held(self, run_id: str) -> bool:
        """Someone is launching or following the run: its lease is current and, when its holder is a
        process on this machine, that process is alive (the lease of a launcher or follower killed with -9
        is released here, so the run is taken over at once rather than when the lease lapses)."""
        owner = self.store.lease_holder(lease_name(run_id))
        if not owner:
            return False
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                self.store.release_lease(lease_name(run_id), owner)  # only if still that dead owner's
                return False
            except PermissionError:
                pass
        return True

    def _say_once(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self.progress(message)

    # reading --------------------------------------------------------------------------------------
    def refresh_run(self, ref: str) -> None:
        """Ingests what a live run has written, unless another process is already following it."""
        run = self.store.get_run(ref)
        if run["status"] in ("queued", "running"):
            try:
                self._ingest_if_unowned(run)
            except EngineUnavailable:
                pass

    def show_record(self, ref: str) -> dict[str, Any]:
        """The run with its artifacts and events (no metric scan: cheap enough to poll every second)."""
        run = self.store.get_run(ref)
        run["artifacts"] = self.store.artifacts(run["seq"])
        run["events"] = self.store.events(run["id"])
        run["checks"] = self.store.checks(run["seq"])
        return run

    def show(self, ref: str) -> dict[str, Any]:
        """Everything recorded about a run; each metric summarised in SQL (never its whole history)."""
        run = self.show_record(ref)
        run["metrics"] = {}
        for name in self.store.metric_names(run["seq"]):
            stats = self.store.metric_stats(run["seq"], name)
            run["metrics"][name] = {k: stats[k] for k in ("points", "last", "min", "max")}
        run["run_dir"] = str(self.dirs.run_dir(run["id"]))
        return run

    def local_machine(self) -> "LocalSample":
        from workbench.machines.local import sample_local
        return sample_local(self.dirs.data, self.gpu_probe)

    def dashboard(self) -> dict[str, Any]:
        """What the Dashboard shows, in one round trip: live, queued and recent runs."""
        active = self.store.list_runs(limit=50, status="running")
        queued = self.store.list_runs(limit=50, status="queued")
        recent = [r for r in self.store.list_runs(limit=12) if r["status"] not in ("queued", "running")][:8]
        return {"running": active, "queued": queued, "recent": recent, "total": self.store.count_runs()}

    def doctor(self) -> list[dict[str, Any]]:
        from workbench.doctor import run_checks
        return run_checks(self)


def _spec_record(exp: Experiment) -> dict[str, Any]:
    return asdict(exp)


def _experiment_from_record(recorded: dict[str, Any]) -> Experiment:
    from workbench.projects.checks import Check
    from workbench.projects.spec import Mount

    exp = Experiment(**recorded)
    exp.mounts = [Mount(**m) for m in recorded.get("mounts", [])]
    exp.checks = [Check(**c) for c in recorded.get("checks", [])]
    return exp


def _runs_as_root(user: str | None) -> bool:
    """uid 0 however it is spelled, or this user's own uid:gid when that is root's."""
    if user is None:
        return os.getuid() == 0
    return user.split(":")[0] in ("root", "0")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _unredacted_env(exp: Experiment, project: Path) -> dict[str, str]:
    """The history keeps secrets redacted: a rerun takes their values from the project's workbench.toml
    as it is now, or else from this environment, and says which one is missing."""
    env = dict(exp.env)
    current: dict[str, str] = {}
    try:
        current = load_spec(project).experiments.get(exp.name, Experiment(name="", command=[])).env
    except WorkbenchError:
        pass
    for name, value in exp.env.items():
        if REDACTED not in value:
            continue
        if name in current:
            env[name] = current[name]
        elif name in os.environ:
            env[name] = os.environ[name]
        else:
            raise WorkbenchError(f"the history keeps {name} redacted and neither {project}/workbench.toml nor "
                                 "this environment sets it", hint=f"export {name}=... and rerun")
    return env


def _git_state(root: Path, exclude: list[str] | None = None) -> dict[str, Any]:
    """The commit, whether the work tree differs from it (1, 0, or None = unknown) and the diff. `notes` holds
    (kind, message) events for the run: a "warning" when git could not tell the state (a repository with a
    missing object: never recorded as clean), and a "git" event listing untracked files (ignored ones too)
    that go into the snapshot and so into the run, though the commit does not hold them."""
    def git(*args: str) -> tuple[str | None, str]:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"git {args[0]}: {exc}"
        if done.returncode != 0:
            first = next((ln for ln in done.stderr.decode(errors="replace").splitlines() if ln.strip()), "")
            return None, f"git {args[0]} failed (exit {done.returncode}){': ' + first.strip() if first else ''}"
        return done.stdout.decode(errors="replace"), ""

    commit, _ = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    state: dict[str, Any] = {"git_commit": commit.strip(), "notes": []}
    diff, why = git("diff", "HEAD", "--", ".")
    if diff is None:
        state.update(git_dirty=None, git_diff=None)
        state["notes"].append(("warning", f"git state unknown: {why[:300]}"))
    else:
        state.update(git_dirty=int(bool(diff)), git_diff=diff[:GIT_DIFF_LIMIT] if diff else None)
    listing, why = git("ls-files", "--others", "-z", "--", ".")
    if listing is None:
        state["notes"].append(("warning", f"untracked files unknown: {why[:300]}"))
        return state
    from workbench.projects.patterns import ALWAYS_IGNORED, compile_patterns

    excluded = compile_patterns(exclude or [])

    def snapshotted(rel: str) -> bool:
        parts = rel.split("/")
        return not any(p in ALWAYS_IGNORED for p in parts) and \
            not any(excluded("/".join(parts[:n])) for n in range(1, len(parts) + 1))

    untracked = [rel for rel in listing.split("\0") if rel and snapshotted(rel)]
    if untracked:
        shown = ", ".join(untracked[:UNTRACKED_LISTED])
        more = f" and {len(untracked) - UNTRACKED_LISTED} more" if len(untracked) > UNTRACKED_LISTED else ""
        state["notes"].append(("git", f"{len(untracked)} untracked file(s) in the snapshot, not in the commit: "
                                      f"{shown}{more}"))
    return state
