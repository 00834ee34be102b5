"""Local GPU telemetry through NVML: initialised once per process, static fields (name, uuid, limits, MIG
mode) read once, the rest polled per tick. Every optional field may raise NVMLError_NotSupported: it
becomes None ("n/a"), never 0. `nvml` is the pynvml module, or a stand-in with the same functions."""

from __future__ import annotations

import threading
from typing import Any

from workbench.machines.nvidia_smi import GpuReading


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _process_name(pid: int) -> str | None:
    """The command name of a local pid (None when it has gone or lives in another pid namespace)."""
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return None


class NvmlSampler:
    def __init__(self, nvml: Any = None) -> None:
        self._nvml = nvml
        self._lock = threading.Lock()
        self._started = False
        self.error: str | None = None
        self.driver: str | None = None
        self._devices: list[tuple[Any, GpuReading]] = []

    @property
    def nvml(self) -> Any:
        if self._nvml is None:
            import pynvml

            self._nvml = pynvml
        return self._nvml

    def _optional(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except self.nvml.NVMLError:
            return None

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            try:
                nvml = self.nvml
            except ImportError:
                self.error = "nvidia-ml-py is not installed"
                return
            try:
                nvml.nvmlInit()
            except nvml.NVMLError as exc:
                self.error = f"NVML: {exc}"
                return
            self.driver = _text(self._optional(nvml.nvmlSystemGetDriverVersion) or "") or None
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = self._optional(nvml.nvmlDeviceGetMemoryInfo, handle)
                limit = self._optional(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
                mig = self._optional(nvml.nvmlDeviceGetMigMode, handle)
                static = GpuReading(
                    index=index, uuid=_text(nvml.nvmlDeviceGetUUID(handle)), name=_text(nvml.nvmlDeviceGetName(handle)),
                    memory_total=None if memory is None else memory.total, memory_used=None, utilization=None,
                    temperature=None, power=None, power_limit=None if limit is None else limit / 1000,
                    fan=None, mig=None if mig is None else ("Enabled" if mig[0] else "Disabled"), driver=self.driver,
                )
                self._devices.append((handle, static))

    def sample(self) -> list[GpuReading]:
        """One poll of every GPU: memory, utilization, temperature, power, fan, processes."""
        self.start()
        nvml, readings = self.nvml, []
        for handle, static in self._devices:
            memory = self._optional(nvml.nvmlDeviceGetMemoryInfo, handle)
            rates = self._optional(nvml.nvmlDeviceGetUtilizationRates, handle)
            temperature = self._optional(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
            power = self._optional(nvml.nvmlDeviceGetPowerUsage, handle)
            fan = self._optional(nvml.nvmlDeviceGetFanSpeed, handle)
            processes = self._optional(nvml.nvmlDeviceGetComputeRunningProcesses, handle)
            readings.append(GpuReading(
                index=static.index, uuid=static.uuid, name=static.name, memory_total=static.memory_total,
                memory_used=None if memory is None else memory.used,
                utilization=None if rates is None else float(rates.gpu),
                temperature=None if temperature is None else float(temperature),
                power=None if power is None else power / 1000, power_limit=static.power_limit,
                fan=None if fan is None else float(fan), mig=static.mig, driver=static.driver,
                processes=None if processes is None else [
                    {"pid": p.pid, "name": _process_name(p.pid), "memory": getattr(p, "usedGpuMemory", None)}
                    for p in processes],
            ))
        return readings

    def close(self) -> None:
        with self._lock:
            if self._started and self.error is None:
                try:
                    self.nvml.nvmlShutdown()
                except self.nvml.NVMLError:
                    pass
            self._started, self._devices = False, []
