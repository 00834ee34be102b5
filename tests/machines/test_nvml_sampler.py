"""The local NVML sampler against the real H100 readings (through a thin seam), and the no-GPU path."""

from __future__ import annotations

import json

from fake_nvml import FIXTURE, FakeNvml
from workbench.machines.gpus import inventory_from
from workbench.machines.nvml_sampler import NvmlSampler


def test_samples_follow_the_busy_series_and_unsupported_is_na():
    fake = FakeNvml()
    sampler = NvmlSampler(fake)
    first = sampler.sample()[0]
    assert first.name == "NVIDIA H100 80GB HBM3" and first.uuid.startswith("GPU-cccebab5")
    assert first.memory_total == 85520809984 and first.power_limit == 700.0 and first.mig == "Disabled"
    assert first.fan is None  # NVMLError_NotSupported -> n/a, not 0
    series = json.loads(FIXTURE.read_text())["busy_series"]
    readings = [first] + [sampler.sample()[0] for _ in range(len(series) - 1)]
    assert [r.utilization for r in readings] == [float(s["util"]) for s in series]
    assert [r.power for r in readings] == [s["power_mw"] / 1000 for s in series]
    assert max(r.utilization for r in readings) == 100.0
    assert readings[0].processes == [{"pid": 4194399, "name": None, "memory": 7565279232}]  # beyond pid_max: no such process here, so no name
    assert fake.inits == 1  # initialised once, not per tick


def test_no_driver_is_a_normal_no_gpu_state():
    class NoDriver(FakeNvml):
        def nvmlInit(self) -> None:
            raise self.NVMLError("Driver Not Loaded")

    sampler = NvmlSampler(NoDriver())
    assert sampler.sample() == []
    inventory = inventory_from(sampler)
    assert inventory.gpus == [] and inventory.error == "NVML: Driver Not Loaded"


def test_inventory_marks_busy_gpus():
    inventory = inventory_from(NvmlSampler(FakeNvml()))
    assert len(inventory.gpus) == 1 and inventory.gpus[0].busy  # a process holds memory on it
    assert inventory.driver == "580.159.04"
