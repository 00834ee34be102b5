"""Machines (issue 4): local NVML sampling cost per GPU per tick; 8 SSH hosts streamed at 1 Hz for 60 s
(Workbench's CPU use); time back to connected after sshd restarts.

    python benchmarks/machines_perf.py [--seconds 60] [--hosts 8]
Targets: <= 0.2 ms per GPU per tick; <= 10% of one core; <= 5 s.
No GPU here: NVML is the stand-in that replays the H100 readings (tests/machines/fake_nvml.py), so the
figure is Workbench's own cost per tick on top of NVML's (~0.047 ms per round, measured on the H100).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "machines")]

from fake_nvml import FakeNvml  # noqa: E402
from helpers import wait_for  # noqa: E402
from sshd_hosts import keygen, make_fakegpu, make_host  # noqa: E402
from workbench.machines.hostkeys import HostKeyStore  # noqa: E402
from workbench.machines.nvml_sampler import NvmlSampler  # noqa: E402
from workbench.machines.ssh import SSHTarget, fetch_host_key  # noqa: E402
from workbench.machines.telemetry import Fleet  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--hosts", type=int, default=8)
    args = parser.parse_args()
    result = {}

    sampler = NvmlSampler(FakeNvml())
    sampler.sample()
    ticks = 20_000
    started = time.perf_counter()
    for _ in range(ticks):
        sampler.sample()
    result["nvml_tick_ms_per_gpu"] = round((time.perf_counter() - started) / ticks * 1000, 4)

    root = Path(tempfile.mkdtemp(prefix="wb-bench-ssh-"))
    user_key = root / "userkey"
    keygen(user_key)
    authorized = root / "authorized_keys"
    authorized.write_text((root / "userkey.pub").read_text())
    fakegpu = make_fakegpu(root)
    hosts = [make_host(root, f"h{i}", f"127.0.0.{i + 1}", authorized, str(fakegpu)) for i in range(args.hosts)]
    for host in hosts:
        host.start()
    store = HostKeyStore(root / "known_hosts", system=())
    targets = []
    for i, host in enumerate(hosts):
        target = SSHTarget(f"h{i}", host.address, host.port, "root", [str(user_key)])
        store.trust(host.address, host.port, fetch_host_key(target, store))
        targets.append(target)
    try:
        fleet = Fleet(targets, store, interval_ms=1000).start()
        wait_for(lambda: all(s["updated"] for s in fleet.snapshot().values()), timeout=60)
        before, wall = cpu_seconds(), time.monotonic()
        time.sleep(args.seconds)
        used, wall = cpu_seconds() - before, time.monotonic() - wall
        samples = {name: len(s["util_history"].get(0, [])) for name, s in fleet.snapshot().items()}
        result.update({"hosts": args.hosts, "seconds": round(wall, 1),
                       "cpu_percent_of_one_core": round(100 * used / wall, 2),
                       "samples_per_host_min": min(samples.values())})
        first = hosts[0]
        import subprocess
        subprocess.run(["pkill", "-KILL", "-P", str(first.process.pid)])  # its sessions die with it
        first.stop()
        wait_for(lambda: fleet.snapshot()["h0"]["state"] != "connected", timeout=30)
        first.start()
        restarted = time.monotonic()
        wait_for(lambda: fleet.snapshot()["h0"]["state"] == "connected", timeout=60, interval=0.01)
        result["reconnect_seconds"] = round(time.monotonic() - restarted, 2)
        fleet.stop()
    finally:
        for host in hosts:
            host.stop()
    result["targets"] = "nvml <= 0.2 ms/GPU/tick; <= 10% of one core; reconnect <= 5 s"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
