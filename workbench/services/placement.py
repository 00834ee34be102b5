"""Placement: which machine a run goes to when it may go to several (`--machine auto`, or the experiment's
`machine = "auto"` / `machines = [...]`).

Each candidate is surveyed at once, on a thread of its own (an unreachable host delays nothing): its
executor, its GPUs from its telemetry (NVML here, nvidia-smi on a host), minus those reserved by Workbench
runs. A GPU is free when it is idle there (no process, little memory and compute in use) and reserved by no
run. The cheapest machine that fits wins, then (a CPU run) this workstation, then the least loaded, then the
name."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import WorkbenchError
from workbench.machines.gpus import GpuInventory
from workbench.machines.nvidia_smi import GpuReading
from workbench.services.context import Services, first_line

SURVEY_TIMEOUT = 8.0  # a host that has not answered by then is left out of this placement
DOWN_RETRY = 15.0     # a host that did not answer is not asked again (in this process) before then
NO_RUNTIME_RETRY = 600.0  # an engine that could not give a container GPUs is passed over for GPU runs this long
LOCAL_ON_TIE = "CPU run: this workstation preferred on a tie"
_down: dict[str, tuple[float, str]] = {}  # machine -> (when to ask again, what it said)


@dataclass
class Survey:
    machine: str
    executor: str | None = None
    gpus: list[GpuReading] = field(default_factory=list)
    free: list[GpuReading] = field(default_factory=list)
    driver: str | None = None
    rate: float | None = None
    active: int = 0               # Workbench runs there now
    error: str | None = None      # why it cannot take the run now (unreachable, no engine, no GPU runtime)
    unreachable: bool = False
    counted: bool = False         # its GPUs were read (else a count of 0 says nothing)
    no_runtime: bool = False      # its engine could not give a container GPUs a moment ago
    scheduler: bool = False       # a Slurm cluster: its scheduler queues the job and picks its GPUs

    def describe(self, gpus: int) -> str:
        rate = f", ${self.rate:.2f}/h" if self.rate else ""
        if self.scheduler:
            return f"{self.machine}: a Slurm cluster (its scheduler places the job){rate}"
        if gpus:
            return f"{self.machine}: {len(self.free)} of {len(self.gpus)} GPUs free{rate}"
        return f"{self.machine}: {self.active} active run(s){rate}"


@dataclass
class Placement:
    machine: str
    executor: str
    gpus: GpuInventory | None
    reason: str
    hourly_cost: float | None
    gpu_share: float

    def fields(self, request: dict[str, Any]) -> dict[str, Any]:
        """What the run records of it (see store.place_run)."""
        chosen = [g.uuid for g in self.gpus.gpus] if self.gpus else []
        fields: dict[str, Any] = {"executor": self.executor, "hourly_cost": self.hourly_cost,
                                  "gpu_share": self.gpu_share,
                                  "placement": {"request": request, "machine": self.machine, "reason": self.reason}}
        if self.gpus and chosen:
            fields.update(gpu_model=self.gpus.gpus[0].name, driver=self.gpus.driver)
        return fields


def candidates(wb: Services, requested: str | list[str] | None) -> list[str]:
    """The machines a run may go to: one named, the listed ones, or (auto) this workstation and every SSH
    machine."""
    if isinstance(requested, list):
        return [wb.executors.machine(name) for name in requested]
    if requested in (None, "auto"):
        return ["local"] + [m["name"] for m in wb.store.machines() if m["kind"] == "ssh"]
    return [wb.executors.machine(requested)]


def known_candidates(wb: Services, requested: str | list[str] | None) -> list[str]:
    """`candidates`, without the machines removed since (a queued run's list may name one)."""
    from workbench.errors import NotFound

    if isinstance(requested, list):
        known = []
        for name in requested:
            try:
                known.append(wb.executors.machine(name))
            except NotFound:
                continue
        return known
    try:
        return candidates(wb, requested)
    except NotFound:
        return []


def hourly_rate(wb: Services, machine: str) -> float | None:
    record = wb.store.get_machine(machine)
    return (record or {}).get("config", {}).get("hourly_cost") if record else None


def note_no_gpu_runtime(wb: Services, machine: str, message: str) -> None:
    """A GPU launch there failed for want of a GPU runtime: placement passes the machine over for GPU runs
    for a while (recorded with the machine, so every process knows), then tries it again."""
    if wb.store.get_machine(machine):
        wb.store.update_machine_config(machine, no_gpu_runtime={"at": time.time(), "reason": message})


def no_gpu_runtime(wb: Services, machine: str) -> str | None:
    record = wb.store.get_machine(machine) or {}
    noted = (record.get("config") or {}).get("no_gpu_runtime")
    if noted and time.time() - noted.get("at", 0) < NO_RUNTIME_RETRY:
        return noted.get("reason") or "no GPU runtime"
    return None


def survey(wb: Services, machine: str, gpus: int, executor: str | None) -> Survey:
    found = Survey(machine, rate=hourly_rate(wb, machine))
    found.active = sum(1 for run in wb.store.active_runs()
                       if (run.get("machine") or "local") == machine and run.get("waiting") is None)
    try:
        resolved = wb.executors.resolve(machine)
        found.executor = wb.executors.choose(resolved, executor, lambda _message: None)
        backend = wb.executors.declared(found.executor)
        if backend.places_gpus_itself:
            found.scheduler = True  # its scheduler (Slurm) queues it and picks its GPUs: nothing to count here
            return found
        if gpus:
            if machine == "local":
                inventory = wb.gpu_probe()
            else:
                from workbench.machines.remote import remote_gpu_inventory
                inventory = remote_gpu_inventory(wb.executors.connection(machine))
            reserved = wb.store.reserved_gpus(machine)
            found.gpus, found.driver = inventory.gpus, inventory.driver
            found.counted = True  # what its driver says it has (none without one)
            found.free = [g for g in inventory.gpus if not g.busy and (machine, g.uuid) not in reserved]
            if not inventory.gpus:
                found.error = inventory.error or "no GPUs"
            elif resolved.kind not in backend.pins_gpus_on:
                found.error = f"the {backend.kind} executor does not pin GPUs here"
            elif backend.runs_in_image and (missing := no_gpu_runtime(wb, machine)):
                found.error, found.no_runtime = first_line(missing), True
    except WorkbenchError as exc:
        from workbench.machines.ssh import SSHError

        found.unreachable = isinstance(exc, SSHError)
        # an SSH error begins with the machine's name, which the reason (`why_not`) puts before it already
        found.error = exc.message.removeprefix(f"{machine}: ") if found.unreachable else exc.message
        if found.unreachable:
            wb.executors.forget_machine(machine)
    except Exception as exc:  # noqa: BLE001 - one machine's failure only leaves it out
        found.error = first_line(exc)
    return found


def seems_down(machine: str) -> bool:
    """A survey in this process found it not answering a moment ago."""
    return machine in _down and _down[machine][0] > time.monotonic()


def survey_all(wb: Services, machines: list[str], gpus: int, executor: str | None) -> list[Survey]:
    """Every machine at once; one that has not answered within SURVEY_TIMEOUT counts as unreachable."""
    results: dict[str, Survey] = {}
    now = time.monotonic()
    for name in machines:  # down a moment ago: said as it was, without waiting for it again
        if name in _down and _down[name][0] > now:
            results[name] = Survey(name, error=_down[name][1], unreachable=True)

    def one(name: str) -> None:
        found = results[name] = survey(wb, name, gpus, executor)
        if found.unreachable:
            _down[name] = (time.monotonic() + DOWN_RETRY, found.error or "does not answer")
        else:
            _down.pop(name, None)

    threads = [threading.Thread(target=one, args=(name,), daemon=True, name=f"survey-{name}")
               for name in machines if name not in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SURVEY_TIMEOUT)
    late = [name for name in machines if name not in results]
    for name in late:
        _down[name] = (time.monotonic() + DOWN_RETRY, f"did not answer within {SURVEY_TIMEOUT:g}s")
    return [results.get(name) or Survey(name, error=f"did not answer within {SURVEY_TIMEOUT:g}s", unreachable=True)
            for name in machines]


def choose(surveys: list[Survey], gpus: int) -> Survey | None:
    fits = [s for s in surveys if s.error is None and s.executor and (s.scheduler or len(s.free) >= gpus)]
    if not fits:
        return None
    return min(fits, key=lambda s: _rank(s, gpus))


def _rank(survey: Survey, gpus: int) -> tuple:
    """A CPU run goes where it is cheapest, then least loaded; on a tie this workstation takes it (no snapshot
    to send, its logs and files here), so CPU sweep trials still spread once this workstation is busier."""
    if gpus:
        load = 0.0 if survey.scheduler else (len(survey.gpus) - len(survey.free)) / len(survey.gpus)
        return (survey.rate or 0.0, load, survey.machine)
    return (survey.rate or 0.0, survey.active, survey.machine != "local", survey.machine)


def _won_on_tie(chosen: Survey, gpus: int, surveys: list[Survey]) -> bool:
    """This workstation took a CPU run that another fitting machine of the same cost and load would have
    taken by name."""
    if gpus or chosen.machine != "local":
        return False
    return any(s is not chosen and s.error is None and s.executor and (s.rate or 0.0) == (chosen.rate or 0.0)
               and s.active == chosen.active and s.machine < chosen.machine for s in surveys)


def why_not(surveys: list[Survey], gpus: int) -> str:
    """One line: what the run waits for."""
    if all(s.error for s in surveys):
        return "waiting: " + "; ".join(f"{s.machine} {s.error}" for s in surveys)
    names = ", ".join(s.machine for s in surveys if not s.error)
    what = f"{gpus} free GPU{'s' if gpus != 1 else ''}" if gpus else "a machine"
    return f"waiting for {what} on {names}"


def refuse_if_never(surveys: list[Survey], gpus: int) -> None:
    """A run that no candidate could ever take (every one answered, none has that many GPUs) is refused at
    once rather than queued forever."""
    if not gpus or any(s.unreachable or not s.counted or s.scheduler for s in surveys):
        return  # an unreachable one, or one whose GPUs could not be read, may have them
    if all(s.no_runtime for s in surveys if len(s.gpus) >= gpus) and any(s.no_runtime for s in surveys):
        detail = "; ".join(f"{s.machine}: {s.error}" for s in surveys if s.no_runtime)
        raise WorkbenchError(f"no machine with {gpus} GPU(s) can give a container GPUs now ({detail})",
                             hint="install the NVIDIA Container Toolkit there (checked again within "
                                  f"{NO_RUNTIME_RETRY / 60:.0f} minutes), or set gpus = 0")
    most = max((len(s.gpus) for s in surveys), default=0)
    if most < gpus:
        detail = ", ".join(f"{s.machine} {len(s.gpus)}" for s in surveys)
        raise WorkbenchError(f"the experiment needs {gpus} GPU(s); no machine has that many ({detail})",
                             hint="lower gpus, or add a machine with more GPUs: `workbench machines add`")


def placement_of(chosen: Survey, gpus: int, surveys: list[Survey] = ()) -> Placement:
    """The placement of `chosen` among `surveys` (the candidates it was chosen from, for its reason)."""
    inventory = GpuInventory(chosen.free[:gpus], driver=chosen.driver) if gpus and not chosen.scheduler else None
    share = gpus / len(chosen.gpus) if gpus and chosen.gpus else 1.0
    reason = chosen.describe(gpus)
    if _won_on_tie(chosen, gpus, list(surveys)):
        reason += f"; {LOCAL_ON_TIE}"
    return Placement(chosen.machine, chosen.executor or "docker", inventory, reason, chosen.rate, share)
