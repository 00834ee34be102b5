"""This workstation's own numbers: CPU count and load, memory, disk, GPUs (NVML). Cheap enough to sample
every couple of seconds from a worker thread."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from workbench.machines.gpus import GpuInventory, GpuProbe, nvml_inventory


@dataclass
class LocalSample:
    cpus: int
    load: tuple[float, float, float]
    memory_used: int | None
    memory_total: int | None
    disk_used: int
    disk_total: int
    gpus: GpuInventory = field(default_factory=lambda: GpuInventory([]))


def _meminfo() -> tuple[int | None, int | None]:
    try:
        values = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            values[name] = int(rest.split()[0]) * 1024
        total = values["MemTotal"]
        return total - values.get("MemAvailable", values.get("MemFree", 0)), total
    except (OSError, KeyError, ValueError, IndexError):
        return None, None


def sample_local(data_dir: Path, gpu_probe: GpuProbe = nvml_inventory) -> LocalSample:
    used, total = _meminfo()
    disk = shutil.disk_usage(data_dir)
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return LocalSample(cpus=os.cpu_count() or 1, load=load, memory_used=used, memory_total=total,
                       disk_used=disk.used, disk_total=disk.total, gpus=gpu_probe())
