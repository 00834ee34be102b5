"""The facade both front ends use: launch, wait/follow, cancel, rerun, remove, gc, reconcile, doctor, and the
reads the TUI's screens make. Each method hands its work to the module of its use case (launch.py, runs.py,
reconcile.py, ...), which takes the use cases' context (`core.Core`, a `context.Services`), never the facade.
The facade keeps that context private (`_services`): the store and the backends are not part of its surface.
Its answers are typed records (answers.py: `run.status`, `run.to_json()`). The CLI and the app read and
change state through it alone: neither touches the store, an executor or a run's folder (import-linter,
tests/test_architecture.py); from the services' modules they take only pure helpers and types (compare's
figures, spec_text, log_tail.LogChunk, the answers' records, errors).

Blocking by design (Docker, SQLite, files): the CLI calls it directly, the TUI from worker threads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from workbench.dirs import Dirs, resolve_dirs
from workbench.errors import WorkbenchError
from workbench.execution.ingest import RunIngestor
from workbench.machines.gpus import GpuProbe, nvml_inventory
from workbench.projects.spec import ProjectSpec, load_spec
from workbench.services import gc as gc_
from workbench.services import dispatch_trigger
from workbench.services import launch as launch_, machines, projects as projects_, reconcile as reconcile_
from workbench.services import notebooks, runs as runs_
from workbench.services.answers import (AddedMachine, AliasSet, BisectResult, CiBranch, CiCommit, Comparison, Dashboard, Deployment, DeploymentDetail,
                                        DeploymentSummary, MachineEntry, MachineStats,
                                        ModelDetail, ModelEntry, ModelVersion, Project, ProjectEntry, Run, RunDetail,
                                        RunRow, Session, Sweep, SweepSummary, TrustedKey)
from workbench.services.context import Progress
from workbench.services.core import Core
from workbench.services.executors import LOCAL
from workbench.services.git_state import GIT_DIFF_LIMIT, UNTRACKED_LISTED, git_state as _git_state
from workbench.services.launch import LAUNCH_LEASE_RENEW, LAUNCH_LEASE_TTL
from workbench.services.log_tail import LOG_TAIL_LINES, LogChunk, read_log_tail
from workbench.services.spec_text import spec_problems
from workbench.services.machines import HISTORY_WINDOW
from workbench.services.runs import ENGINE_RETRY_MAX

if TYPE_CHECKING:
    from workbench.machines.hostkeys import HostKeyStore, Verdict
    from workbench.machines.local import LocalSample
    from workbench.machines.ssh import SSHTarget
    from workbench.machines.telemetry import Fleet
    from workbench.services.ci_follow import CiFollower
    from workbench.services.watch import WatchSession

__all__ = ["Workbench", "Progress", "LAUNCH_LEASE_TTL", "LAUNCH_LEASE_RENEW", "ENGINE_RETRY_MAX", "HISTORY_WINDOW",
           "GIT_DIFF_LIMIT", "UNTRACKED_LISTED", "_git_state"]


def _quiet(_: str) -> None:
    pass


class Workbench:
    def __init__(self, dirs: Dirs | None = None, *, gpu_probe: GpuProbe = nvml_inventory,
                 progress: Progress = _quiet) -> None:
        # The plumbing (store, backends) lives in the use cases' context, private to this package (core.py).
        self._services = Core((dirs or resolve_dirs()).ensure(), gpu_probe, progress)
        self.dirs = self._services.dirs
        self._reconciler = reconcile_.Reconciler(self._services)

    @property
    def progress(self) -> Progress:
        """Where the services' progress lines go (stderr in the CLI, notifications in the app)."""
        return self._services.progress

    @progress.setter
    def progress(self, say: Progress) -> None:
        self._services.progress = say

    def close(self) -> None:
        """Never waits on a host: a reconcile pass still asking one is told to stop, connections close without
        waiting for a connect in progress, and the store closes unless such a pass still uses it (its
        daemon thread ends with the process; every write it makes is a whole transaction)."""
        idle = self._reconciler.close()
        self._services.executors.close()
        store = self._services.store_opened()
        if store is not None and idle:
            store.close()

    # projects -------------------------------------------------------------------------------------
    def add_project(self, path: str) -> ProjectSpec:
        return projects_.add_project(self._services.store, path)

    def remove_project(self, name_or_path: str) -> None:
        projects_.remove_project(self._services.store, name_or_path)

    def projects(self) -> list[Project]:
        """Registered projects with their experiments (each spec loaded; `error` when it does not load)."""
        return [Project.from_row(project) for project in projects_.projects(self._services.store)]

    def project_list(self) -> list[ProjectEntry]:
        """Registered projects as recorded (name, path): no spec is read."""
        return [ProjectEntry.from_row(project) for project in self._services.store.projects()]

    def project_costs(self) -> dict[str, float]:
        """What each project's runs cost so far, by project name (projects whose runs had no rate: absent)."""
        return self._services.store.costs_by_project(time.time())

    def project_names(self) -> list[str]:
        return self._services.store.project_names()

    def read_spec(self, path: str) -> ProjectSpec:
        """The project's workbench.toml as it is now (read at each call; SpecError when it does not load)."""
        return load_spec(path)

    def recheck_launch(self, path: str, experiment: str, typed: dict[str, str],
                       shown: dict[str, Any]) -> tuple[list[tuple[str | None, str]], dict[str, str]]:
        """The launch form's values against the experiment's spec read now (spec_text.spec_problems): the
        problems, (param or None, why), and the overrides to launch with."""
        try:
            params = load_spec(path).experiment(experiment).params
        except WorkbenchError as exc:
            return [(None, exc.message)], {}
        return spec_problems(params, typed, shown)

    # machines -------------------------------------------------------------------------------------
    def hostkeys(self) -> "HostKeyStore":
        return machines.hostkeys(self._services)

    def machine_target(self, name: str) -> "SSHTarget":
        return machines.machine_target(self._services, name)

    def add_machine(self, name: str, ssh: str | None = None, identity: str | None = None,
                    hourly_cost: float | None = None, jump: str | None = None,
                    workdir: str | None = None, slurm: dict[str, Any] | None = None) -> AddedMachine:
        """An SSH host; with `slurm` (login host, partition, account, time, setup, poll) a Slurm cluster
        reached through that login host."""
        return AddedMachine.from_row(machines.add_machine(self._services, name, ssh, identity, hourly_cost, jump,
                                                          workdir, slurm))

    def remove_machine(self, name: str) -> None:
        machines.remove_machine(self._services, name)

    def list_machines(self) -> list[MachineEntry]:
        return [MachineEntry.from_row(machine) for machine in self._services.list_machines()]

    def host_key(self, name: str) -> "Verdict":
        """The key the SSH host NAME presents now, checked against the known keys (no authentication). Network
        I/O: the app calls it from a worker thread."""
        from workbench.machines.ssh import fetch_host_key  # paramiko: imported only when a host is asked

        target = self.machine_target(name)
        known = self.hostkeys()
        return known.check(target.hostname, target.port, fetch_host_key(target, known))

    def trust_machine(self, name: str, fingerprint: str | None = None,
                      confirm: Callable[[str], bool] | None = None) -> TrustedKey:
        return TrustedKey.from_row(machines.trust_machine(self._services, name, fingerprint, confirm))

    def fleet(self, interval_ms: int = 1000) -> "Fleet | None":
        return machines.fleet(self._services, interval_ms)

    def machine_stats(self, name: str) -> MachineStats:
        return MachineStats.from_row(machines.machine_stats(self._services, name))

    def local_machine(self) -> "LocalSample":
        return self._services.local_machine()

    def downsample_telemetry(self) -> int:
        """Folds old telemetry samples into coarser ones (the TUI asks every minute)."""
        return self._services.store.downsample_telemetry()

    # launching ------------------------------------------------------------------------------------
    def choose_executor(self, requested: str | None) -> str:
        return launch_.choose_executor(self._services, requested)

    def launch(self, path: str, experiment: str | None = None, overrides: list[str] | None = None, *,
               machine: str | None = None, executor: str | None = None, priority: int = 0) -> Run:
        return Run.from_row(self._services.launch(path, experiment, overrides, machine=machine, executor=executor,
                                                  priority=priority))

    def dispatch(self) -> int:
        """Starts queued runs as machines free up, until the queue is empty (one dispatcher at a time)."""
        from workbench.services import dispatch as dispatch_  # these use cases load when used: a faster start

        return dispatch_.dispatch(self._services, self._services.follow_in_background)

    def ensure_dispatcher(self) -> None:
        dispatch_trigger.ensure_dispatcher(self._services)

    def sweep(self, path: str, experiment: str | None = None, overrides: list[str] | None = None, *,
              machine: str | None = None, executor: str | None = None, priority: int = 0) -> Sweep:
        from workbench.services import sweeps as sweeps_

        return Sweep.from_row(sweeps_.start_sweep(self._services, path, experiment, overrides, machine=machine,
                                                  executor=executor, priority=priority))

    def sweeps(self) -> list[SweepSummary]:
        from workbench.services import sweeps as sweeps_

        return [SweepSummary.from_row(sweeps_.sweep_summary(self._services, s)) for s in self._services.store.sweeps()]

    def sweep_summary(self, ref: str) -> SweepSummary:
        from workbench.services import sweeps as sweeps_

        return SweepSummary.from_row(sweeps_.sweep_summary(self._services, self._services.store.get_sweep(ref)))

    def cancel_sweep(self, ref: str) -> Sweep:
        from workbench.services import sweeps as sweeps_

        return Sweep.from_row(sweeps_.cancel_sweep(self._services, ref))

    # models ----------------------------------------------------------------------------------------
    def register_model(self, run: str, artifact: str, name: str, force: bool = False) -> ModelVersion:
        from workbench.services import models
        return ModelVersion.from_row(models.register(self._services, run, artifact, name, force))

    def models(self) -> list[ModelEntry]:
        from workbench.services import models
        return [ModelEntry.from_row(model) for model in models.models(self._services)]

    def model(self, ref: str) -> ModelDetail | ModelVersion:
        """A model in full (NAME), or one version (NAME:V, NAME@ALIAS)."""
        from workbench.services import models
        shown = models.show(self._services, ref)
        return ModelDetail.from_row(shown) if "versions" in shown else ModelVersion.from_row(shown)

    def alias_model(self, name: str, version: str | int, alias: str) -> AliasSet:
        from workbench.services import models
        return AliasSet.from_row(models.set_alias(self._services, name, version, alias))

    # deployments -----------------------------------------------------------------------------------
    def deploy(self, ref: str, machine: str, *, port: int | None = None, name: str | None = None,
               stop_first: bool = False, bind: str | None = None, canary: int | None = None,
               canary_for: float = 60.0, max_error_rate: float = 1.0) -> DeploymentDetail:
        """Serves a model version (blue/green, or as a canary with `canary` percent of requests for
        `canary_for` seconds, judged by the deployment watcher)."""
        from workbench.services import deploy
        return DeploymentDetail.from_row(deploy.deploy(
            self._services, ref, machine, port=port, name=name, stop_first=stop_first, bind=bind, canary=canary,
            canary_for=canary_for, max_error_rate=max_error_rate))

    def cluster(self, machine: str) -> dict[str, Any]:
        """A Slurm machine's partitions: nodes by state, GPUs and GPUs in use (sinfo, at most once a poll)."""
        from workbench.services import slurm

        return slurm.cluster(self._services, machine)

    def has_deployments(self) -> bool:
        return self._services.store.has_live_deployments()

    def deployments(self, check: bool = True) -> list[DeploymentSummary]:
        """Every deployment; with `check`, each reconciled with its machine and its health asked."""
        from workbench.services import deploy
        return [DeploymentSummary.from_row(d) for d in deploy.deployments(self._services, check)]

    def deployment(self, name: str, check: bool = True) -> DeploymentDetail:
        from workbench.services import deploy
        return DeploymentDetail.from_row(deploy.show(self._services, name, check))

    def rollback(self, name: str) -> DeploymentDetail:
        from workbench.services import deploy
        return DeploymentDetail.from_row(deploy.rollback(self._services, name))

    def promote_canary(self, name: str) -> DeploymentDetail:
        """Ends a deployment's canary now: every request to the new version."""
        from workbench.services import deploy
        return DeploymentDetail.from_row(deploy.promote(self._services, name))

    def deployment_token(self, name: str) -> str:
        from workbench.services import deploy
        return deploy.endpoint_token(self._services, name)

    def watch_deployments(self) -> None:
        """The deployment watcher's loop (see services/deploy_watch.py), until nothing is live."""
        from workbench.services.deploy_watch import watch
        watch(self._services)

    def deployment_logs(self, name: str, tail: int = 200) -> str:
        from workbench.services import deploy
        return deploy.logs(self._services, name, tail)

    def stop_deployment(self, name: str, remove: bool = False) -> Deployment:
        from workbench.services import deploy
        return Deployment.from_row(deploy.stop(self._services, name, remove))

    def compare(self, refs: list[str], buckets: int = 120) -> Comparison:
        """Runs side by side: differing params, each metric's last/best (best run marked), checks, curves."""
        from workbench.services import compare as compare_

        return Comparison.from_row(compare_.compare(self._services, refs, buckets))

    def queue(self) -> list[Run]:
        """The runs waiting for a machine, in the order the dispatcher takes them."""
        return [Run.from_row(run) for run in self._services.store.waiting_runs()]

    def rerun(self, ref: str, executor: str | None = None) -> Run:
        return Run.from_row(launch_.rerun(self._services, ref, executor))

    # JupyterLab sessions ---------------------------------------------------------------------------
    def open_session(self, path: str, experiment: str | None = None, *, machine: str | None = None,
                     gpus: int | None = None, port: int | None = None, queue: bool = False) -> Session:
        """JupyterLab in the experiment's image on a machine with its GPUs reserved, once it answers."""
        from workbench.services import sessions as sessions_

        return Session.from_row(sessions_.open_session(self._services, path, experiment, machine=machine, gpus=gpus,
                                                       port=port, queue=queue))

    def attach_session(self, ref: str, port: int | None = None) -> Session:
        from workbench.services import sessions as sessions_

        return Session.from_row(sessions_.attach_session(self._services, ref, port))

    def sessions(self) -> list[Session]:
        from workbench.services import sessions as sessions_

        return [Session.from_row(s) for s in sessions_.sessions(self._services)]

    def stop_session(self, ref: str) -> Session:
        """Stops it and brings its changed files back into the project (`brought_back` says what)."""
        from workbench.services import sessions as sessions_

        return Session.from_row(sessions_.stop_session(self._services, ref))

    def serve_tunnel(self, ref: str) -> None:
        """The detached forwarder of a session on an SSH host (`workbench _tunnel ID`)."""
        from workbench.services import sessions as sessions_

        sessions_.serve_tunnel(self._services, ref)

    # watching -------------------------------------------------------------------------------------
    def watch(self, path: str, say: Callable[[str], None], *, polling: bool = False,
              debounce: float | None = None) -> "WatchSession":
        from workbench.services import watch  # the folder watcher is imported only when a project is watched
        return watch.watch(self._services, path, say, polling=polling, debounce=debounce)

    # CI on commits (services/ci*.py) ------------------------------------------------------------------
    def ci_watch(self, path: str, say: Callable[[str], None], *, branch: str | None = None,
                 experiment: str | None = None, remote: str | None = None, every_commit: bool = False,
                 fetch_every: float = 60.0) -> "CiFollower":
        """Follows a branch here (until stopped): each new commit becomes a run of its own tree."""
        from workbench.services import ci_follow

        return ci_follow.follow(self._services, path, say, branch=branch, experiment=experiment, remote=remote,
                                every_commit=every_commit, fetch_every=fetch_every)

    def ci_detach(self, path: str, *, branch: str | None = None, experiment: str | None = None,
                  remote: str | None = None, every_commit: bool = False, fetch_every: float = 60.0) -> CiBranch:
        """Follows a branch from a detached process (`workbench _ci_follow`), resumed after a reboot."""
        from workbench.services import ci_follow

        return CiBranch.from_row(ci_follow.start_detached(self._services, path, branch=branch, experiment=experiment,
                                                          remote=remote, every_commit=every_commit,
                                                          fetch_every=fetch_every))

    def ci_follow_detached(self, path: str, branch: str) -> None:
        """The detached follower's body: follows as `ci watch --detach` recorded it, until `ci stop`."""
        from workbench.services import ci_follow

        ci_follow.follow_detached(self._services, path, branch)

    def ci_stop(self, path: str, branch: str | None = None) -> list[CiBranch]:
        from workbench.services import ci_follow

        return [CiBranch.from_row(row) for row in ci_follow.stop(self._services, path, branch)]

    def ci_list(self, path: str, *, branch: str | None = None, experiment: str | None = None,
                remote: str | None = None, limit: int = 50) -> list[CiCommit]:
        from workbench.services import ci

        return [CiCommit.from_row(row) for row in ci.list_commits(self._services, path, branch=branch,
                                                                   experiment=experiment, remote=remote, limit=limit)]

    def ci_current_branch(self, path: str) -> str:
        """The branch `ci list PATH` reads by default (the project's current one); refused in one line where
        there is none: not a git repository, a detached HEAD."""
        from workbench.projects.git_repo import GitRepo

        return GitRepo(path).current_branch()

    def ci_branches(self, path: str | None = None) -> list[CiBranch]:
        from workbench.services import ci

        return [CiBranch.from_row(row) for row in ci.followed(self._services, path)]

    def ci_bisect(self, path: str, good: str, bad: str, say: Callable[[str], None], *, experiment: str | None = None,
                  check: str | None = None, parallel: int | None = None) -> BisectResult:
        from workbench.services import ci_bisect

        return ci_bisect.bisect(self._services, path, good, bad, say, experiment=experiment, check=check,
                                parallel=parallel)

    # following and reading runs -------------------------------------------------------------------
    def ingestor(self, run: dict[str, Any]) -> RunIngestor:
        return reconcile_.ingestor(self._services, run)

    def wait(self, ref: str, sink: Callable[[bytes], None] | None = None,
             progress: Callable[[str], None] | None = None) -> Run:
        return Run.from_row(runs_.wait(self._services, ref, sink, progress))

    def follow(self, ref: str) -> Run:
        """The background follower's work: `wait`, unless another live process follows the run already."""
        return Run.from_row(runs_.wait(self._services, ref, give_way_after=runs_.GIVE_WAY_AFTER))

    def follow_in_background(self, run_id: str) -> None:
        self._services.follow_in_background(run_id)

    def logs(self, ref: str, follow: bool = False, poll: float = 0.2,
             on_progress: Callable[[str], None] | None = None) -> Iterator[bytes]:
        return runs_.logs(self._services, ref, follow, poll, on_progress)

    def progress_line(self, ref: str) -> str | None:
        return runs_.progress_line(self._services, ref)

    def refresh_run(self, ref: str) -> None:
        runs_.refresh_run(self._services, ref)

    def run(self, ref: str) -> Run:
        """The run's stored record (a ref as every command takes it: an id, or a unique prefix of one)."""
        return Run.from_row(self._services.store.get_run(ref))

    def runs(self, *, limit: int | None = 100, status: str | None = None, project: str | None = None,
             experiment: str | None = None) -> list[RunRow]:
        """The newest runs first, filtered (`runs list`)."""
        return [RunRow.from_row(run) for run in
                self._services.store.list_runs(limit=limit, status=status, project=project, experiment=experiment)]

    def runs_json(self, *, limit: int | None = 100, status: str | None = None, project: str | None = None,
                  experiment: str | None = None) -> str:
        """`runs` as one JSON array, built in SQL (see Store.list_runs_json): `runs list --json`."""
        return self._services.store.list_runs_json(limit=limit, status=status, project=project, experiment=experiment,
                                         now=time.time())

    def run_out_dir(self, ref: str) -> Path:
        """The run's output folder on this workstation (what `runs pull` copies into)."""
        return self.dirs.run_dir(self._services.store.get_run(ref)["id"]) / "out"

    def run_notebook(self, ref: str) -> Path:
        """A notebook run's executed notebook on this workstation (WorkbenchError saying why when there is none)."""
        return notebooks.executed_notebook(self._services, ref)

    def lead_metrics(self, runs: list[RunRow]) -> dict[str, str]:
        """Each run's lead metric (its sweep's objective, else its first check's), read in one pass."""
        from workbench.services.compare import lead_metrics

        return lead_metrics(self._services, [(run.id, run.sweep_id) for run in runs])

    def run_cost(self, run: Run | RunRow, now: float) -> float | None:
        """What the run cost until `now` (or its end) at its machine's rate; None without a rate."""
        return run.cost_at(now)

    def run_log_tail(self, run_id: str, offset: int, max_lines: int = LOG_TAIL_LINES) -> LogChunk:
        """The run's stored log lines from byte `offset` on, at most its newest (see log_tail.read_log_tail)."""
        return read_log_tail(self.dirs.run_dir(run_id) / "logs.txt", offset, max_lines=max_lines)

    def show_record(self, ref: str) -> RunDetail:
        return RunDetail.from_row(runs_.show_record(self._services, ref))

    def show(self, ref: str) -> RunDetail:
        """Everything recorded about a run (`runs show`), its image's size read from its records alone (no
        engine asked; None when unknown)."""
        from workbench.execution.images import run_image_size

        run = runs_.show(self._services, ref)
        return RunDetail.from_row(run, image_size=run_image_size(self._services.store, run))

    def is_followed(self, run_id: str) -> bool:
        return runs_.is_followed(self._services, run_id)

    def metric_series(self, run: Run, buckets: int) -> dict[str, dict[str, Any]]:
        return runs_.metric_series(self._services, run.seq, buckets)

    def run_page(self, *, limit: int | None = 100, offset: int = 0, sort: str = "created", descending: bool = True,
                 status: str | None = None, project: str | None = None, text: str | None = None
                 ) -> list[RunRow]:
        """A page of runs, filtered and ordered in SQL (see Store.list_runs)."""
        return [RunRow.from_row(run) for run in self._services.store.list_runs(
            limit=limit, offset=offset, sort=sort, descending=descending, status=status, project=project, text=text)]

    def sort_value_names(self, *, status: str | None = None, project: str | None = None,
                         text: str | None = None) -> tuple[list[str], list[str]]:
        """(param names, metric names) of the runs a filter matches (see Store.value_names)."""
        return self._services.store.value_names(status=status, project=project, text=text)

    def count_runs_matching(self, *, status: str | None = None, project: str | None = None,
                            text: str | None = None) -> int:
        return self._services.store.count_matching(status=status, project=project, text=text)

    def dashboard(self) -> Dashboard:
        return Dashboard.from_row(runs_.dashboard(self._services))

    # control --------------------------------------------------------------------------------------
    def cancel(self, ref: str) -> Run:
        return Run.from_row(self._services.cancel(ref))

    def gpu_holders(self) -> dict[tuple[str, str], str]:
        """(machine, GPU uuid) -> the active run holding that GPU."""
        return runs_.gpu_holders(self._services)

    def pull(self, ref: str, paths: list[str] | None = None) -> list[tuple[str, int]]:
        return self._services.pull(ref, paths)

    def remove(self, ref: str, force: bool = False) -> str:
        return runs_.remove(self._services, ref, force)

    def gc(self) -> dict[str, Any]:
        return gc_.gc(self._services)

    # reconciliation -------------------------------------------------------------------------------
    def reconcile_if_stale(self, max_age: float = 2.0) -> None:
        self._reconciler.if_stale(max_age)

    def reconcile(self, wait: float | None = None) -> list[dict[str, Any]]:
        """`wait`: seconds to wait for SSH hosts' passes (default 1.5; they go on in the background)."""
        return self._reconciler.reconcile(wait)

    # health ---------------------------------------------------------------------------------------
    def doctor(self, machine: str | None = None) -> list[dict[str, Any]]:
        from workbench.services.doctor import host_checks, run_checks
        return run_checks(self._services) if machine in (None, LOCAL) else host_checks(self._services, machine)
