"""Local GPU inventory through NVML (nvidia-ml-py). No driver or no GPU is the normal "no GPUs" state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


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


def nvml_inventory() -> GpuInventory:
    try:
        import pynvml
    except ImportError:
        return GpuInventory([], error="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return GpuInventory([], error=f"NVML: {exc}")
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpu = Gpu(index=index, uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                      name=_text(pynvml.nvmlDeviceGetName(handle)))
            try:
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                gpu.memory_used, gpu.memory_total = memory.used, memory.total
            except pynvml.NVMLError:
                pass
            try:
                gpu.utilization = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                pass
            try:
                gpu.processes = [{"pid": p.pid, "memory": p.usedGpuMemory}
                                 for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)]
            except pynvml.NVMLError:
                pass
            gpus.append(gpu)
        return GpuInventory(gpus, driver=driver)
    except pynvml.NVMLError as exc:
        return GpuInventory([], error=f"NVML: {exc}")
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
