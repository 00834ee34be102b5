"""Local GPU inventory through NVML (nvidia-ml-py). No driver or no GPU is the normal "no GPUs" state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from workbench.machines.nvml_sampler import NvmlSampler


@dataclass
class Gpu:
    index: int
    uuid: str
    name: str
    memory_used: int | None = None
    memory_total: int | None = None
    utilization: float | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """A GPU someone is using: processes on it, or most of its memory taken."""
        if self.processes:
            return True
        if self.memory_used is not None and self.memory_total:
            return self.memory_used / self.memory_total > 0.1
        return False


@dataclass
class GpuInventory:
    gpus: list[Gpu]
    driver: str | None = None
    error: str | None = None  # why there are none, when NVML could not tell


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
    return GpuInventory([Gpu(index=r.index, uuid=r.uuid, name=r.name, memory_used=r.memory_used,
                             memory_total=r.memory_total, utilization=r.utilization,
                             processes=r.processes or []) for r in readings], driver=sampler.driver)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
