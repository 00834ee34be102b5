"""One sample of an SSH host: GPUs through nvidia-smi (none → a CPU machine), CPU count and load, memory,
and whether its Docker engine can run GPU containers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workbench.machines.nvidia_smi import QUERY_ARGS, GpuReading, parse_query
from workbench.machines.ssh import Connection

if TYPE_CHECKING:
    from workbench.machines.gpus import GpuInventory


@dataclass
class RemoteSample:
    cpus: int | None = None
    load: tuple[float, float, float] | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    gpus: list[GpuReading] = field(default_factory=list)
    gpu_error: str | None = None          # why there are no GPU readings
    docker: str | None = None             # engine version, or None without one
    gpu_runtime: bool | None = None       # NVIDIA runtime registered with that engine


def _meminfo(text: str) -> tuple[int | None, int | None]:
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0]) * 1024
    if "MemTotal" not in values:
        return None, None
    return values["MemTotal"] - values.get("MemAvailable", values.get("MemFree", 0)), values["MemTotal"]


def sample_remote(conn: Connection) -> RemoteSample:
    sample = RemoteSample()
    code, out, err = conn.run(["cat", "/proc/loadavg", "/proc/meminfo"])
    if code == 0:
        text = out.decode(errors="replace")
        first, _, rest = text.partition("\n")
        try:
            sample.load = tuple(float(x) for x in first.split()[:3])  # type: ignore[assignment]
        except ValueError:
            pass
        sample.memory_used, sample.memory_total = _meminfo(rest)
    code, out, _ = conn.run(["nproc"])
    if code == 0 and out.strip().isdigit():
        sample.cpus = int(out.strip())
    code, out, err = conn.run(QUERY_ARGS)
    if code == 0:
        sample.gpus = parse_query(out.decode(errors="replace"))
    elif code == 127:
        sample.gpu_error = "no nvidia-smi: a CPU machine"
    else:
        lines = (err or out).decode(errors="replace").strip().splitlines()
        sample.gpu_error = lines[-1] if lines else f"nvidia-smi exited with {code}"
    code, out, _ = conn.run(["docker", "info", "--format", "{{json .ServerVersion}} {{json .Runtimes}}"])
    if code == 0:
        version, _, runtimes = out.decode(errors="replace").strip().partition(" ")
        try:
            sample.docker = json.loads(version)
            sample.gpu_runtime = "nvidia" in json.loads(runtimes or "{}")
        except ValueError:
            pass
    return sample


def remote_gpu_inventory(conn: Connection) -> "GpuInventory":
    """The host's GPUs now, with their compute processes (one nvidia-smi query each): what a launch there
    picks free GPUs from. No nvidia-smi is the normal "no GPUs" state of a CPU machine."""
    from workbench.machines.gpus import GpuInventory
    from workbench.machines.nvidia_smi import APPS_ARGS, parse_apps

    code, out, err = conn.run(QUERY_ARGS)
    if code == 127:
        return GpuInventory([], error=f"{conn.target.name} has no nvidia-smi: a CPU machine")
    if code != 0:
        lines = (err or out).decode(errors="replace").strip().splitlines()
        return GpuInventory([], error=f"nvidia-smi on {conn.target.name}: "
                                      f"{lines[-1] if lines else f'exit status {code}'}")
    gpus = parse_query(out.decode(errors="replace"))
    code, out, _ = conn.run(APPS_ARGS)
    apps = parse_apps(out.decode(errors="replace")) if code == 0 else {}
    for gpu in gpus:
        gpu.processes = apps.get(gpu.uuid, [])
    return GpuInventory(gpus, driver=next((g.driver for g in gpus if g.driver), None))
