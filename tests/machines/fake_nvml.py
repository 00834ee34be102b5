"""A stand-in for the pynvml module that replays the real H100 readings of nvml-busy.json: each poll of a
dynamic field returns the next sample of its 10 Hz series; unsupported fields raise as NVML does."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from helpers import GPU_FIXTURES

FIXTURE = GPU_FIXTURES / "nvml-busy.json"


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    def __str__(self) -> str:
        return "Not Supported"


class FakeNvml:
    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, path: Path = FIXTURE) -> None:
        self.data = json.loads(path.read_text())
        self.device = self.data["devices"][0]
        self.series = self.data["busy_series"]
        self.position = {}
        self.inits = 0

    def _next(self, field: str) -> dict:
        index = self.position.get(field, 0)
        self.position[field] = index + 1
        return self.series[index % len(self.series)]

    def nvmlInit(self) -> None:
        self.inits += 1

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.data["driver"]

    def nvmlDeviceGetCount(self) -> int:
        return self.data["count"]

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.device["name"]

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self.device["uuid"]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=self.device["memory"]["total"], used=self._next("memory")["mem_used"])

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        sample = self._next("util")
        return SimpleNamespace(gpu=sample["util"], memory=sample["mem_util"])

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return self._next("temp")["temp"]

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._next("power")["power_mw"]

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return self.device["power_limit_mw"]

    def nvmlDeviceGetFanSpeed(self, handle: int) -> int:
        raise NVMLError_NotSupported()  # as the fixture recorded: an H100 SXM has no fan reading

    def nvmlDeviceGetMigMode(self, handle: int) -> list[int]:
        return self.device["mig_mode"]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=4194399, usedGpuMemory=self.device["memory"]["used"])]
