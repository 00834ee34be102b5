"""What the facade answers: typed, frozen records both front ends read by attribute (`run.status`), made
from what the use-case modules and the store return (`from_row`), each with `to_json()`: exactly what the
CLI prints with `--json` (the keys in the order docs/cli-json.md shows them). Their JSON-valued fields
(params, summary, env, a handle, a placement) stay the plain values they are in the records.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Mapping

from workbench.formatting import run_seconds
from workbench.store import cost

# `run`, `queue` and `runs cancel` with --json: these keys, then duration, then cost where the machine has a rate
RUN_JSON_KEYS = ("id", "project", "experiment", "status", "status_reason", "machine", "executor", "created_at",
                 "started_at", "finished_at", "exit_code", "params", "summary", "metric_points", "verdict",
                 "gpu_uuids", "gpu_model", "driver")


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


class _Plain:
    """A record made of a row holding each of its fields by name, and printed as its fields in their order."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Any:
        return cls(**{name: row[name] for name in _fields(cls)})

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _fields(type(self))}


class _Priced:
    """What a run cost (store/cost.py, the one formula) and how long it ran, from its own fields."""

    def cost_at(self, now: float) -> float | None:
        return cost.run_cost(vars(self), now)

    def seconds_at(self, now: float) -> float | None:
        return run_seconds(self, now)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _RunNamed(_Priced, _Plain):
    """What names a run and says where it is, first in every record of one."""
    id: str
    project: str
    experiment: str
    status: str
    status_reason: str | None
    machine: str


@dataclass(frozen=True)
class RunRow(_RunNamed):
    """A run as a list shows it (`runs list`, the Runs screen, the Dashboard): store.runs.LIST_COLUMNS."""
    executor: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    params: dict[str, Any]
    summary: dict[str, Any]
    metric_points: int
    verdict: str | None
    hourly_cost: float | None
    gpu_share: float | None
    sweep_id: str | None
    trial: int | None
    kind: str


@dataclass(frozen=True)
class Run(_Priced, _Plain):
    """A run's whole record: every column of table `runs`, in the table's order."""
    seq: int
    id: str
    project: str
    project_path: str
    experiment: str
    status: str
    status_reason: str | None
    machine: str
    executor: str
    handle: dict[str, Any] | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    cancel_requested: int
    params: dict[str, Any]
    argv: list[str]
    env: dict[str, str]
    image: str | None
    image_id: str | None
    snapshot: str | None
    git_commit: str | None
    git_dirty: int | None
    git_diff: str | None
    gpu_uuids: list[str]
    gpu_model: str | None
    driver: str | None
    spec: dict[str, Any]
    summary: dict[str, Any]
    metric_points: int
    bad_metric_lines: int
    bad_metric_values: int
    rerun_of: str | None
    verdict: str | None
    priority: int
    waiting: dict[str, Any] | None
    placement: dict[str, Any] | None
    hourly_cost: float | None
    gpu_share: float | None
    sweep_id: str | None
    trial: int | None
    kind: str

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """The run as `run`, `runs cancel` and `queue` print it (docs/cli-json.md)."""
        now = time.time() if now is None else now
        out = {k: getattr(self, k) for k in RUN_JSON_KEYS}
        out["duration"] = self.seconds_at(now)
        if self.hourly_cost is not None:
            out["cost"] = self.cost_at(now)
        return out


@dataclass(frozen=True, slots=True)  # many per run, read every second
class RunEvent(_Plain):
    ts: float
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Artifact(_Plain):
    """An output file the run left (`link`: where a symbolic link pointed; it is never followed)."""
    path: str
    size: int | None
    sha256: str | None
    link: str | None


@dataclass(frozen=True, slots=True)
class CheckResult(_Plain):
    """A check of the run's spec as evaluated when it ended (`value`: the metric's, None when it has none)."""
    metric: str
    expression: str
    value: float | None
    passed: bool


@dataclass(frozen=True, slots=True)
class MetricStats(_Plain):
    """A metric of the run, summarised in SQL: how many points, the last value, the least and the most."""
    points: int
    last: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class RunDetail(Run):
    """A run with its artifacts, events and checks (`show_record`: cheap enough to poll every second), and
    from `show` also its metrics summarised, its run dir here and its image's size."""
    artifacts: list[Artifact]
    events: list[RunEvent]
    checks: list[CheckResult]
    cost: float | None
    host_run_dir: str | None = None  # machine:path of its files on a host (remote runs only)
    metrics: dict[str, MetricStats] | None = None
    run_dir: str | None = None
    image_size: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], image_size: int | None = None) -> RunDetail:
        base = {name: row[name] for name in _fields(Run)}
        metrics = row.get("metrics")
        return cls(**base, artifacts=[Artifact(**a) for a in row["artifacts"]],
                   events=[RunEvent(**e) for e in row["events"]],
                   checks=[CheckResult(**c) for c in row["checks"]], cost=row["cost"],
                   host_run_dir=row.get("host_run_dir"),
                   metrics=None if metrics is None else {k: MetricStats(**v) for k, v in metrics.items()},
                   run_dir=row.get("run_dir"), image_size=image_size)

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """`runs show --json`: every column but seq and handle, then what `show` adds, the Slurm job id of a
        Slurm run, its image's size and its duration."""
        now = time.time() if now is None else now
        out: dict[str, Any] = {name: getattr(self, name) for name in _fields(Run) if name not in ("seq", "handle")}
        out["artifacts"] = [a.to_json() for a in self.artifacts]
        out["events"] = [e.to_json() for e in self.events]
        out["checks"] = [c.to_json() for c in self.checks]
        out["cost"] = self.cost
        if self.host_run_dir is not None:
            out["host_run_dir"] = self.host_run_dir
        out["metrics"] = {k: m.to_json() for k, m in (self.metrics or {}).items()}
        out["run_dir"] = self.run_dir
        if self.slurm_job:
            out["slurm_job"] = self.slurm_job
        out["image_size"] = self.image_size
        out["duration"] = self.seconds_at(now)
        return out

    @property
    def slurm_job(self) -> Any:
        """A Slurm run's job id on its cluster (None for any other run)."""
        return (self.handle or {}).get("job")


@dataclass(frozen=True)
class Dashboard:
    """What the Dashboard shows in one round trip: live and queued runs, the last to end, and how many runs."""
    running: list[RunRow]
    queued: list[RunRow]
    recent: list[RunRow]
    total: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Dashboard:
        return cls(running=[RunRow.from_row(r) for r in row["running"]],
                   queued=[RunRow.from_row(r) for r in row["queued"]],
                   recent=[RunRow.from_row(r) for r in row["recent"]], total=row["total"])


# machines ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MachineEntry(_Plain):
    """A registered machine as `machines list` shows it (`address`: "this workstation" for local)."""
    name: str
    kind: str
    address: str
    hourly_cost: float | None


@dataclass(frozen=True)
class AddedMachine:
    """A machine just added: the host key it presents, with its type and fingerprint, or, where it did not
    answer, why (`error`)."""
    name: str
    address: str
    """[user@]host[:port], as added"""
    state: str
    """"host key known", "host key unknown" or "host key changed"; where it did not answer, how it failed"""
    key_type: str | None
    fingerprint: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AddedMachine:
        return cls(**{name: row.get(name) for name in _fields(cls)})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "address": self.address, "state": self.state}
        if self.error is None:
            return {**out, "key_type": self.key_type, "fingerprint": self.fingerprint}
        return {**out, "error": self.error}


@dataclass(frozen=True)
class TrustedKey(_Plain):
    """A host key trusted (`already`: it was before)."""
    name: str
    key_type: str
    fingerprint: str
    trusted: bool
    already: bool


@dataclass(frozen=True)
class MachineStats:
    """One telemetry sample of a machine (`gpus`: each GPU's reading). A host's sample also says its engine
    (`docker`: its version, None without one) and whether the NVIDIA runtime is registered with it
    (`engine_asked`: True, the local sample asks no engine)."""
    name: str
    cpus: int | None
    load: Any
    memory_used: int | None
    memory_total: int | None
    gpus: list[dict[str, Any]]
    gpu_error: str | None
    docker: str | None = None
    gpu_runtime: bool | None = None
    engine_asked: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MachineStats:
        return cls(**row, engine_asked="docker" in row)

    def to_json(self) -> dict[str, Any]:
        engine = {"docker": self.docker, "gpu_runtime": self.gpu_runtime} if self.engine_asked else {}
        return {**{name: getattr(self, name) for name in ("name", "cpus", "load", "memory_used", "memory_total",
                                                          "gpus", "gpu_error")}, **engine}


# projects ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectEntry(_Plain):
    """A registered project as recorded (no spec read)."""
    name: str
    path: str
    added_at: float


@dataclass(frozen=True)
class Project(ProjectEntry):
    """A registered project with its experiments (or why its spec does not load: `error`) and what its runs
    cost so far (None when none ran on a machine with a rate)."""
    cost: float | None
    experiments: list[str]
    error: str | None


# sweeps ------------------------------------------------------------------------------------------------------
SWEEP_JSON_KEYS = ("id", "project", "experiment", "method", "status", "status_reason", "created_at", "finished_at",
                   "space", "options", "progress", "best", "cost", "trials")


@dataclass(frozen=True)
class Sweep(_Plain):
    """A sweep as recorded (table `sweeps`, less its experiment's recorded spec)."""
    id: str
    project: str
    project_path: str
    experiment: str
    method: str
    status: str
    status_reason: str | None
    created_at: float
    finished_at: float | None
    priority: int
    snapshot: str
    space: dict[str, Any]
    """each swept param -> the values or the range it takes"""
    options: dict[str, Any]
    """trials, max_parallel, objective, direction, budget"""
    base_params: dict[str, Any]
    request: dict[str, Any]


@dataclass(frozen=True)
class Trial(_Plain):
    """One trial of a sweep (`status` "pruned" for a trial its sweep stopped early; `objective`: its value of
    the sweep's objective, None without one)."""
    id: str
    trial: int
    status: str
    params: dict[str, Any]
    objective: float | None
    machine: str
    cost: float | None
    status_reason: str | None


@dataclass(frozen=True)
class SweepSummary(Sweep):
    """A sweep with its trials (best first by the objective; those without a value last), how many trials are
    in each status, the best trial's run id and what its trials cost so far."""
    trials: list[Trial]
    progress: dict[str, int]
    best: str | None
    cost: float | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SweepSummary:
        return cls(**{name: row[name] for name in _fields(Sweep)}, trials=[Trial(**t) for t in row["trials"]],
                   progress=row["progress"], best=row["best"], cost=row["cost"])

    def to_json(self, trials: bool = True) -> dict[str, Any]:
        """`sweep`, `sweeps show` and `sweeps cancel` with --json; `sweeps list --json` without the trials."""
        out = {k: getattr(self, k) for k in SWEEP_JSON_KEYS if k != "trials"}
        if trials:
            out["trials"] = [t.to_json() for t in self.trials]
        return out


# compare -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComparedRun:
    id: str
    project: str
    experiment: str
    status: str
    machine: str | None
    verdict: str | None
    checks: list[CheckResult]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "project": self.project, "experiment": self.experiment, "status": self.status,
                "machine": self.machine, "verdict": self.verdict, "checks": [c.to_json() for c in self.checks]}


@dataclass(frozen=True)
class MetricOfRun:
    """One run's figures of a compared metric, and its curve (`series`: downsampled points, never in JSON)."""
    id: str
    last: float | None
    best: float | None
    points: int
    series: list[Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "last": self.last, "best": self.best, "points": self.points}


@dataclass(frozen=True)
class ComparedMetric:
    lower_is_better: bool
    best_run: str | None
    runs: list[MetricOfRun]

    def to_json(self) -> dict[str, Any]:
        return {"lower_is_better": self.lower_is_better, "best_run": self.best_run,
                "runs": [r.to_json() for r in self.runs]}


@dataclass(frozen=True)
class Comparison:
    """Runs side by side: the params that differ (name -> each run's value) and those the same in all, each
    metric's last and best per run with the best run marked, and the runs' checks."""
    runs: list[ComparedRun]
    params_differ: dict[str, list[Any]]
    params_same: dict[str, Any]
    metrics: dict[str, ComparedMetric]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Comparison:
        return cls(
            runs=[ComparedRun(**{**r, "checks": [CheckResult(**c) for c in r["checks"]]}) for r in row["runs"]],
            params_differ=row["params_differ"], params_same=row["params_same"],
            metrics={name: ComparedMetric(m["lower_is_better"], m["best_run"], [MetricOfRun(**r) for r in m["runs"]])
                     for name, m in row["metrics"].items()})

    def to_json(self) -> dict[str, Any]:
        """`runs compare --json` (the curves left out)."""
        return {"runs": [r.to_json() for r in self.runs], "params_differ": self.params_differ,
                "params_same": self.params_same, "metrics": {k: m.to_json() for k, m in self.metrics.items()}}


# models ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelVersion:
    """Version N of a model: its file (content-addressed by sha256), the run and artifact it came from, and
    that run's lineage as registered (`forced`: registered past its gate). `aliases`: those pointing at it,
    where the answer says (`model(NAME:V)`); None where it does not (`register_model`)."""
    name: str
    version: int
    sha256: str
    size: int
    filename: str
    run_id: str
    artifact: str
    lineage: dict[str, Any]
    forced: bool
    created_at: float
    aliases: list[str] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelVersion:
        return cls(**{name: row[name] for name in _fields(ModelVersion) if name != "aliases"},
                   aliases=row.get("aliases"))

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _fields(ModelVersion) if name != "aliases"}
        if self.aliases is not None:
            out["aliases"] = self.aliases
        return out


@dataclass(frozen=True)
class ModelEntry(_Plain):
    """A model as `models list` shows it: how many versions, the latest, when it was last registered, its
    aliases (alias -> version)."""
    name: str
    versions: int
    latest: int
    updated_at: float
    aliases: dict[str, int]


@dataclass(frozen=True)
class AliasMove(_Plain):
    """One move of an alias, as the append-only history keeps it (`previous`: the version it left)."""
    ts: float
    alias: str
    version: int
    previous: int | None
    who: str


@dataclass(frozen=True)
class ModelDetail:
    """A model in full (`models show NAME`): every version with its aliases, the aliases, their history."""
    name: str
    versions: list[ModelVersion]
    aliases: dict[str, int]
    alias_history: list[AliasMove]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelDetail:
        return cls(name=row["name"], versions=[ModelVersion.from_row(v) for v in row["versions"]],
                   aliases=row["aliases"], alias_history=[AliasMove(**h) for h in row["alias_history"]])

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "versions": [v.to_json() for v in self.versions], "aliases": self.aliases,
                "alias_history": [h.to_json() for h in self.alias_history]}


@dataclass(frozen=True)
class AliasSet(_Plain):
    """An alias pointed at a version (`previous`: the version it pointed at before, None for a new alias)."""
    name: str
    alias: str
    version: int
    previous: int | None


# deployments -------------------------------------------------------------------------------------------------
# table `deployments`, in its order
DEPLOYMENT_COLUMNS = ("name", "model", "machine", "port", "proxy", "live_version", "live_container", "status",
                      "status_reason", "health", "health_at", "operation", "created_at", "updated_at", "bind", "auth",
                      "canary", "traffic_baseline", "proxy_address")


@dataclass(frozen=True)
class _DeploymentFields:
    """What a deployment's record and its summary both hold. Its `operation` (a deploy or rollback in progress)
    and `canary` are the records' own JSON values."""
    name: str
    model: str
    machine: str
    port: int
    proxy: str | None
    live_version: int | None
    live_container: str | None
    status: str
    status_reason: str | None
    health: str | None
    health_at: float | None
    operation: dict[str, Any] | None
    created_at: float
    updated_at: float
    bind: str | None
    auth: str | None
    canary: dict[str, Any] | None
    proxy_address: str | None


@dataclass(frozen=True)
class Deployment(_DeploymentFields):
    """A deployment as recorded (table `deployments`): what `deployments stop` answers."""
    traffic_baseline: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Deployment:
        return cls(**{name: row[name] for name in DEPLOYMENT_COLUMNS})

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in DEPLOYMENT_COLUMNS}


_SUMMARY_COLUMNS = tuple(name for name in DEPLOYMENT_COLUMNS if name != "traffic_baseline")


@dataclass(frozen=True)
class DeploymentSummary(_DeploymentFields):
    """A deployment as `deployments list` and the app show it: its record (less the traffic baseline; its
    canary less its counters' baseline, with the watcher's `note`), its endpoint, its last switch (an event),
    the version a rollback brings back (None when none is kept), and where its machine did not answer, why
    its health is unknown (`health_detail`)."""
    endpoint: str
    last_switch: dict[str, Any] | None
    rollback_to: int | None
    health_detail: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeploymentSummary:
        return cls(**{name: row[name] for name in _fields(DeploymentSummary) if name != "health_detail"},
                   health_detail=row.get("health_detail"))

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _SUMMARY_COLUMNS}
        if self.health_detail is not None:
            out["health_detail"] = self.health_detail
        return {**out, "endpoint": self.endpoint, "last_switch": self.last_switch, "rollback_to": self.rollback_to}


@dataclass(frozen=True)
class DeploymentDetail(DeploymentSummary):
    """A deployment in full (`deployments show`, and what deploy, rollback and promote answer): its summary,
    its versions' containers (`targets`), its events, and the traffic the proxy counted."""
    targets: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    traffic: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeploymentDetail:
        summary = DeploymentSummary.from_row(row)
        return cls(**{name: getattr(summary, name) for name in _fields(DeploymentSummary)},
                   targets=row["targets"], events=row["events"], traffic=row["traffic"])

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "targets": self.targets, "events": self.events, "traffic": self.traffic}


@dataclass(frozen=True)
class Session(_RunNamed):
    """A JupyterLab session (a run of kind 'session'): `url` and `token` while it runs (never stored in the
    history: read from its local session.json), `brought_back` once `sessions stop` brought its files back."""
    gpu_uuids: list[str]
    created_at: float
    started_at: float | None
    finished_at: float | None
    hourly_cost: float | None
    gpu_share: float | None
    url: str | None
    token: str | None
    port: int | None
    brought_back: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Session":
        return cls(**{name: row.get(name) for name in _fields(cls)})

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """`notebook --json`: id, url, token, port, machine, gpus; `sessions list --json` and `sessions stop
        --json` add project, status, started_at, finished_at, duration, cost and brought_back."""
        now = time.time() if now is None else now
        return {"id": self.id, "url": self.url, "token": self.token, "port": self.port, "machine": self.machine,
                "gpus": len(self.gpu_uuids or []), "project": self.project, "experiment": self.experiment,
                "status": self.status, "status_reason": self.status_reason, "started_at": self.started_at,
                "finished_at": self.finished_at, "duration": self.seconds_at(now), "cost": self.cost_at(now),
                "brought_back": self.brought_back}


@dataclass(frozen=True)
class CiCommit(_Plain):
    """A commit of a followed branch (`ci list`): its verdict (PASS, FAIL, SKIP, running, queued, skipped,
    cancelled, lost, not evaluated), the values it rests on and their change against the previous evaluated
    commit, and its run."""
    sha: str
    subject: str
    author: str
    committed_at: float
    verdict: str
    run_id: str | None
    metrics: dict[str, float]
    deltas: dict[str, float]
    better: dict[str, str]   # each checked metric's good direction: "higher" or "lower"
    reason: str | None
    experiment: str | None

    @property
    def short(self) -> str:
        return self.sha[:8]


@dataclass(frozen=True)
class CiBranch(_Plain):
    """A branch followed (`ci watch`): whether a follower holds it now (its pid), and its head's verdict."""
    project_path: str
    branch: str
    experiment: str
    remote: str | None
    detached: bool
    active: bool
    pid: int | None
    head: str | None
    last_verdict: str | None
    last_sha: str | None
    last_run: str | None


@dataclass(frozen=True)
class BisectStep(_Plain):
    sha: str
    subject: str
    outcome: str          # good, bad, skip
    run_id: str | None
    reused: bool          # its verdict was already recorded (this commit or one with the same tree)
    values: dict[str, float]  # the check values it was judged by
    reason: str | None    # why a skip could not judge it
    round: int            # the round that tried it; 0: known before the first


@dataclass(frozen=True)
class BisectResult:
    """`ci bisect`: the commits tried in order, and the answer: the first bad commit, or the range it could not
    narrow (every commit in it was skipped)."""
    good: str
    bad: str
    experiment: str
    check: str | None
    steps: list[BisectStep]
    first_bad: str | None
    first_bad_subject: str | None
    unresolved: list[str]  # the candidates when skipped commits kept it from one answer
    runs: int              # runs started by this bisect (not reused)
    rounds: int            # rounds of runs waited for
    parallel: int          # commits tried at once in a round

    def to_json(self) -> dict[str, Any]:
        return {"good": self.good, "bad": self.bad, "experiment": self.experiment, "check": self.check,
                "steps": [s.to_json() for s in self.steps], "first_bad": self.first_bad,
                "first_bad_subject": self.first_bad_subject, "unresolved": self.unresolved, "runs": self.runs,
                "rounds": self.rounds, "parallel": self.parallel}
