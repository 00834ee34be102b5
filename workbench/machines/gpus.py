"""Local GPU inventory through NVML (nvidia-ml-py), for picking free GPUs. No driver or no GPU is the normal
"no GPUs" state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from workbench.machines.nvidia_smi import GpuReading

if TYPE_CHECKING:
    from workbench.machines.nvml_sampler import NvmlSampler


@dataclass
class GpuInventory:
    gpus: list[GpuReading]
    driver: str | None = None
    error: str | None = None  # why there are none, when NVML could not tell
    total: int | None = None  # GPUs on the machine, when `gpus` is a choice among them


GpuProbe = Callable[[], GpuInventory]


_SAMPLER: "NvmlSampler | None" = None


def nvml_inventory() -> GpuInventory:
    """The local GPUs now, through one process-wide NVML sampler (initialised once, never per call)."""
    global _SAMPLER
    from workbench.machines.nvml_sampler import NvmlSampler

    if _SAMPLER is None:
        _SAMPLER = NvmlSampler()
    return inventory_from(_SAMPLER)


def inventory_from(sampler: "NvmlSampler") -> GpuInventory:
    readings = sampler.sample()
    if sampler.error:
        return GpuInventory([], error=sampler.error)
    return GpuInventory(readings, driver=sampler.driver)
