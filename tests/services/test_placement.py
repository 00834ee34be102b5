"""Placement's choice and its memory of hosts that are down, on surveys made by hand (the real surveys
against SSH hosts are in tests/services/remote/test_job_runner.py)."""

from __future__ import annotations

import types

from workbench.machines.nvidia_smi import GpuReading
from workbench.services import placement


def gpus(machine: str, count: int) -> list[GpuReading]:
    return [GpuReading(index=i, uuid=f"GPU-{machine}-{i}", name="NVIDIA H100", memory_total=80 << 30, memory_used=0,
                       utilization=0.0) for i in range(count)]


def surveyed(machine: str, total: int, free: int, rate: float | None, error: str | None = None) -> placement.Survey:
    found = gpus(machine, total)
    return placement.Survey(machine, executor="docker", gpus=found, free=found[:free], rate=rate, error=error,
                            counted=True)


def test_the_cheapest_machine_that_fits_wins_then_the_least_loaded():
    fleet = [surveyed("a", 4, 1, 1.0), surveyed("b", 4, 2, 2.0), surveyed("c", 8, 6, 2.0), surveyed("d", 8, 8, 0.5,
                                                                                                 error="no GPU runtime")]
    assert placement.choose(fleet, 2).machine == "c"  # a lacks 2 free; b and c cost the same; c is less loaded
    assert placement.choose(fleet, 1).machine == "a"  # the cheapest that fits
    assert placement.choose(fleet, 7) is None
    assert placement.why_not(fleet, 7) == "waiting for 7 free GPUs on a, b, c"
    chosen = placement.placement_of(placement.choose(fleet, 2), 2)
    assert chosen.reason == "c: 6 of 8 GPUs free, $2.00/h" and chosen.gpu_share == 0.25
    assert [g.uuid for g in chosen.gpus.gpus] == ["GPU-c-0", "GPU-c-1"]


def test_a_run_no_machine_could_ever_take_is_refused_unless_one_is_unknown():
    import pytest

    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="needs 9 GPU"):
        placement.refuse_if_never([surveyed("a", 4, 4, None), surveyed("b", 8, 0, None)], 9)
    down = placement.Survey("c", error="cannot reach", unreachable=True)
    placement.refuse_if_never([surveyed("a", 4, 4, None), down], 9)  # c may have them: queued instead


def test_a_host_that_is_down_is_not_waited_for_again_at_once(monkeypatch):
    asked = []

    def survey(wb, name, gpus, executor):
        asked.append(name)
        return placement.Survey(name, error=f"{name}: cannot reach", unreachable=name == "down")

    monkeypatch.setattr(placement, "survey", survey)
    monkeypatch.setattr(placement, "_down", {})
    wb = types.SimpleNamespace()
    placement.survey_all(wb, ["down", "up"], 1, None)
    again = placement.survey_all(wb, ["down", "up"], 1, None)
    assert sorted(asked) == ["down", "up", "up"]  # down asked once; up each time
    assert again[0].unreachable and again[0].error == "down: cannot reach"
    monkeypatch.setattr(placement, "DOWN_RETRY", 0.0)
    placement._down["down"] = (0.0, "old")
    placement.survey_all(wb, ["down"], 1, None)
    assert asked.count("down") == 2  # asked again once its time came


def test_a_cpu_run_prefers_this_workstation_on_a_cost_tie_and_says_why():
    # the fleet a researcher had: this workstation and an SSH host both idle and free of charge (gpu-a's
    # name sorts first: it took the run)
    here = placement.Survey("local", executor="docker", active=0)
    host = placement.Survey("gpu-a", executor="docker", active=0)
    chosen = placement.choose([host, here], 0)
    assert chosen.machine == "local"
    reason = placement.placement_of(chosen, 0, [host, here]).reason
    assert reason == "local: 0 active run(s); CPU run: this workstation preferred on a tie"
    # busier here than the host: the run goes there (CPU sweep trials spread), said by load, no tie
    busy_here = placement.Survey("local", executor="docker", active=1)
    assert placement.choose([host, busy_here], 0).machine == "gpu-a"
    assert placement.placement_of(host, 0, [host, busy_here]).reason == "gpu-a: 0 active run(s)"
    # a cheaper host still wins, and a GPU run is placed by load as before
    cheap = placement.Survey("gpu-b", executor="docker", rate=0.0, active=0)
    dear_here = placement.Survey("local", executor="docker", rate=1.0, active=0)
    assert placement.choose([dear_here, cheap], 0).machine == "gpu-b"
    assert placement.placement_of(cheap, 0, [dear_here, cheap]).reason == "gpu-b: 0 active run(s)"
    alone = placement.placement_of(busy_here, 0, [busy_here]).reason
    assert alone == "local: 1 active run(s)"  # no tie: nothing to explain
