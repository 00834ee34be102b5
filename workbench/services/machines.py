"""Machines: SSH hosts added (nothing trusted on the way), trusted by an explicit action, removed, listed,
sampled once, or sampled live as a fleet. The workstation is always `local`."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench.errors import NotFound, WorkbenchError
from workbench.services.context import Services

if TYPE_CHECKING:
    from workbench.machines.hostkeys import HostKeyStore
    from workbench.machines.local import LocalSample
    from workbench.machines.ssh import SSHTarget
    from workbench.machines.telemetry import Fleet

HISTORY_WINDOW = 300.0  # seconds of telemetry a restarted fleet view starts with


def hostkeys(wb: Services) -> "HostKeyStore":
    from workbench.machines.hostkeys import HostKeyStore
    return HostKeyStore(wb.dirs.known_hosts)


def machine_target(wb: Services, name: str) -> "SSHTarget":
    from workbench.machines.ssh import target_from_dict
    machine = wb.store.get_machine(name)
    if machine is None:
        raise NotFound(f"no machine {name!r}", hint="see `workbench machines list`")
    if machine["kind"] not in ("ssh", "slurm"):
        raise WorkbenchError(f"{name} is this workstation, not an SSH host")
    return target_from_dict(machine["config"]["target"])


# Words the CLI and the spec read as something other than a machine: `local` is this workstation, `auto`
# asks placement to choose (and is what a queued run records as its machine until it is placed).
RESERVED_NAMES = ("local", "auto")
MACHINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_machine_name(name: str) -> None:
    if name.lower() in RESERVED_NAMES:
        raise WorkbenchError(f"machine name {name!r} is reserved: `local` is this workstation and `auto` lets "
                             "placement choose", hint="pick another name")
    if not MACHINE_NAME.match(name):
        raise WorkbenchError(f"machine name {name[:80]!r}: use at most 64 letters, digits, '.', '_', '-' "
                             "(starting with a letter or digit)")


def slurm_settings(slurm: dict[str, Any]) -> dict[str, Any]:
    """The Slurm settings of a cluster machine, checked (one line for what is wrong)."""
    from workbench.execution.backends.slurm import SLURM_TIME_FORM

    time_limit = slurm.get("time")
    if time_limit is not None and not SLURM_TIME_FORM.match(time_limit):
        raise WorkbenchError(f"--time {time_limit!r}: give a Slurm time limit such as 04:00:00, 90 or 1-00:00:00")
    poll = slurm.get("poll")
    if poll is not None and poll < 1:
        raise WorkbenchError("--poll must be 1 second or more (sites rate-limit squeue: 30 is the default)")
    for key in ("partition", "account"):
        value = slurm.get(key)
        if value is not None and not re.match(r"^[A-Za-z0-9_.,-]+$", value):
            raise WorkbenchError(f"--{key} {value!r}: letters, digits, '.', '_', ',' and '-' only")
    setup = slurm.get("setup")
    if setup is not None and ("\n" in setup or "\0" in setup):
        raise WorkbenchError("--setup is one shell line")
    return {k: slurm.get(k) for k in ("partition", "account", "time", "setup", "poll")}


def add_machine(wb: Services, name: str, ssh: str | None = None, identity: str | None = None,
                hourly_cost: float | None = None, jump: str | None = None,
                workdir: str | None = None, slurm: dict[str, Any] | None = None) -> dict[str, Any]:
    """Records an SSH host (from `[user@]host[:port]`, or NAME's ~/.ssh/config entry) and reports
    whether its host key is known. Nothing is trusted here. With `slurm`, the host is a cluster's login
    node (`slurm["login"]`) and runs there are Slurm jobs."""
    settings = None
    if slurm is not None:
        if ssh:
            raise WorkbenchError("give --slurm LOGIN_HOST or --ssh, not both")
        ssh, settings = slurm.get("login"), slurm_settings(slurm)
    from workbench.machines.ssh import SSHError, fetch_host_key, target_to_dict
    from workbench.machines.ssh_config import host_aliases, load_ssh_config, parse_address, target_from_config

    check_machine_name(name)
    if workdir is not None and not (workdir.startswith("/") or workdir.startswith("~")):
        raise WorkbenchError(f"--dir {workdir!r}: give an absolute path on the host, or one under ~")
    if hourly_cost is not None and hourly_cost < 0:
        raise WorkbenchError("--hourly-cost must be zero or more")
    config = load_ssh_config()
    flag = "--slurm" if settings is not None else "--ssh"
    try:
        if ssh:
            target = parse_address(ssh, name=name, config=config)
        elif name in host_aliases(config):
            target = target_from_config(name, config)
        else:
            raise WorkbenchError(f"{name} is not a Host in ~/.ssh/config", hint="pass --ssh [user@]host[:port]")
        if jump:
            flag = "--jump"
            target.jump = parse_address(jump, name=f"{name}-jump", config=config)
    except ValueError as exc:
        raise WorkbenchError(f"{flag} {exc}") from None
    if identity:
        path = Path(identity).expanduser()
        if not path.is_file():
            raise WorkbenchError(f"identity file {path} does not exist")
        target.identity_files = [str(path.resolve())]
        hop = target.jump
        while hop is not None:  # a jump host without its own key setting uses the same key
            hop.identity_files = hop.identity_files or target.identity_files
            hop = hop.jump
    config: dict[str, Any] = {"target": target_to_dict(target), "hourly_cost": hourly_cost, "dir": workdir}
    if settings is not None:
        config["slurm"] = settings
        from workbench.execution.backends.slurm import time_rounding
        if (rounded := time_rounding(settings["time"])) is not None:
            wb.progress(f"note: {rounded}")
    wb.store.add_machine(name, "slurm" if settings is not None else "ssh", target.address, config)
    try:
        key = fetch_host_key(target, hostkeys(wb))
        verdict = hostkeys(wb).check(target.hostname, target.port, key)
        state = {"known": "host key known", "unknown": "host key unknown", "changed": "host key changed"}[verdict.state]
        return {"name": name, "address": target.address, "state": state, "key_type": verdict.key_type,
                "fingerprint": verdict.fingerprint}
    except (SSHError, WorkbenchError) as exc:
        return {"name": name, "address": target.address, "state": getattr(exc, "state", "unreachable"),
                "error": str(exc)}


def remove_machine(wb: Services, name: str) -> None:
    if name == "local":
        raise WorkbenchError("`local` is this workstation; it cannot be removed")
    active = [run["id"] for run in wb.store.active_runs() if run.get("machine") == name]
    if active:
        raise WorkbenchError(f"machine {name!r} has {len(active)} active run(s) ({', '.join(active[:3])}); "
                             "not removed", hint="wait for them, or `workbench runs cancel` them first")
    if not wb.store.remove_machine(name):
        raise NotFound(f"no machine {name!r}", hint="see `workbench machines list`")
    wb.executors.forget_machine(name)  # its connection, engine and host dir in this process


def list_machines(wb: Services) -> list[dict[str, Any]]:
    out = []
    for machine in wb.store.machines():
        config = json.loads(machine["config"]) if isinstance(machine["config"], str) else machine["config"]
        out.append({"name": machine["name"], "kind": machine["kind"], "address": machine["address"] or "this workstation",
                    "hourly_cost": config.get("hourly_cost")})
    return out


class HostKeyNotTrusted(WorkbenchError):
    """The key NAME presents was not confirmed: its type and fingerprint, for a front end to say how to
    compare and accept it (`--fingerprint`)."""

    def __init__(self, name: str, key_type: str, fingerprint: str) -> None:
        super().__init__(f"{name}: host key not trusted", hint="compare the fingerprint, then confirm it or "
                                                               "pass --fingerprint SHA256:...")
        self.name, self.key_type, self.fingerprint = name, key_type, fingerprint


def trust_machine(wb: Services, name: str, fingerprint: str | None = None,
                  confirm: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Trusts the key NAME presents now: it must match `fingerprint`, or the user confirms it on seeing
    it. A changed key is refused."""
    from workbench.machines.ssh import HostKeyChanged, fetch_host_key

    target = machine_target(wb, name)
    store = hostkeys(wb)
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
        raise HostKeyNotTrusted(name, verdict.key_type, verdict.fingerprint)
    store.trust(target.hostname, target.port, key)
    return {**result, "trusted": True, "already": False}


def fleet(wb: Services, interval_ms: int = 1000) -> "Fleet | None":
    """Live telemetry samplers for every registered SSH machine (not started); None without any, so
    paramiko is not even imported."""
    configs = [json.loads(m["config"]) for m in wb.store.machines() if m["kind"] == "ssh"]
    if not configs:
        return None
    from workbench.machines.ssh import target_from_dict
    from workbench.machines.telemetry import Fleet

    targets = [target_from_dict(config["target"]) for config in configs]
    store = wb.store
    window = HISTORY_WINDOW

    def history(name: str) -> dict[int, list[tuple]]:
        return store.telemetry_since(name, time.time() - window)
    return Fleet(targets, hostkeys(wb), interval_ms, recorder=store.add_telemetry, history=history)


def local_machine(wb: Services) -> "LocalSample":
    from workbench.machines.local import sample_local
    return sample_local(wb.dirs.data, wb.gpu_probe)


def machine_stats(wb: Services, name: str) -> dict[str, Any]:
    """One telemetry sample of a machine."""
    if name == "local":
        sample = wb.local_machine()
        return {"name": "local", "cpus": sample.cpus, "load": list(sample.load),
                "memory_used": sample.memory_used, "memory_total": sample.memory_total,
                "gpus": [asdict(g) for g in sample.gpus.gpus], "gpu_error": sample.gpus.error}
    from workbench.machines.remote import sample_remote
    from workbench.machines.ssh import Connection

    connection = Connection(machine_target(wb, name), hostkeys(wb))
    try:
        sample = sample_remote(connection)
    finally:
        connection.close()
    return {"name": name, **asdict(sample)}
