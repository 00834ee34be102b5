"""Streamed remote telemetry over the persistent connection: samples arrive, a CPU host is recognised,
nothing is left running on the host after stop, and the sampler reconnects after sshd restarts."""

from __future__ import annotations

import subprocess
import time

import pytest

from helpers import wait_for
from workbench.machines.hostkeys import HostKeyStore
from workbench.machines.ssh import SSHTarget, fetch_host_key
from workbench.machines.telemetry import Fleet


@pytest.fixture
def trusted(ssh_env, tmp_path):
    store = HostKeyStore(tmp_path / "known_hosts", system=())
    targets = []
    for name, host in (("gpu", ssh_env.gpu), ("cpu", ssh_env.cpu)):
        target = SSHTarget(name=name, hostname=host.address, port=host.port, user="root",
                           identity_files=[str(ssh_env.user_key)])
        store.trust(host.address, host.port, fetch_host_key(target, store))
        targets.append(target)
    return store, targets


def sampler_pids() -> set[str]:
    done = subprocess.run(["pgrep", "-f", "fakegpu/bin/nvidia-smi"], capture_output=True, text=True)
    return set(done.stdout.split())


def remote_samplers() -> int:
    return len(sampler_pids())


def test_stream_samples_and_cpu_host_and_clean_stop(trusted):
    store, targets = trusted
    fleet = Fleet(targets, store, interval_ms=200).start()
    try:
        wait_for(lambda: len(fleet.snapshot()["gpu"]["util_history"].get(0, [])) >= 3, timeout=20)
        snap = fleet.snapshot()
        assert snap["gpu"]["state"] == "connected"
        assert snap["gpu"]["gpus"][0].name == "NVIDIA H100 80GB HBM3"
        assert snap["gpu"]["gpus"][0].fan is None
        wait_for(lambda: fleet.snapshot()["cpu"]["cpu_only"], timeout=20)
        wait_for(lambda: remote_samplers() == 1, timeout=10)  # an earlier test's stream may still be ending
        stream = sampler_pids()
        time.sleep(1.0)  # five samples at 200 ms
        assert sampler_pids() == stream  # one long-lived stream, not a process per sample
    finally:
        fleet.stop()
    wait_for(lambda: remote_samplers() == 0, timeout=10)  # the stream ends with the connection


def test_reconnects_after_sshd_restart(trusted, ssh_env):
    store, targets = trusted
    fleet = Fleet(targets[:1], store, interval_ms=200).start()
    try:
        wait_for(lambda: fleet.snapshot()["gpu"]["updated"] > 0, timeout=20)
        ssh_env.gpu.stop()
        subprocess.run(["pkill", "-f", "fakegpu/bin/nvidia-smi"])
        wait_for(lambda: fleet.snapshot()["gpu"]["state"] != "connected", timeout=20)
        ssh_env.gpu.start()
        restarted = time.monotonic()
        wait_for(lambda: fleet.snapshot()["gpu"]["state"] == "connected"
                 and fleet.snapshot()["gpu"]["updated"] > time.time() - 0.5, timeout=30)
        print(f"back to connected {time.monotonic() - restarted:.2f}s after sshd restarted")
    finally:
        fleet.stop()


def test_history_is_recorded_and_survives_a_restart(trusted, tmp_path):
    from workbench.store import open_store

    store_db = open_store(tmp_path / "wb.db")
    hostkeys, targets = trusted
    fleet = Fleet(targets[:1], hostkeys, interval_ms=100, recorder=store_db.add_telemetry,
                  history=lambda name: store_db.telemetry_since(name, time.time() - 300)).start()
    try:
        wait_for(lambda: len(fleet.snapshot()["gpu"]["util_history"].get(0, [])) >= 5, timeout=20)
    finally:
        fleet.stop()
    kept = store_db.telemetry_since("gpu", time.time() - 300)[0]
    assert len(kept) >= 1 and kept[0][1] == 0.0  # the replayed H100 is idle
    again = Fleet(targets[:1], hostkeys, recorder=store_db.add_telemetry,
                  history=lambda name: store_db.telemetry_since(name, time.time() - 300))
    assert len(again.snapshot()["gpu"]["util_history"][0]) == len(kept)  # sparkline restored before any sample


def test_gpu_processes_arrive_on_a_second_channel(trusted):
    store, targets = trusted
    fleet = Fleet(targets[:1], store, interval_ms=200).start()
    try:
        wait_for(lambda: fleet.snapshot()["gpu"]["processes"], timeout=20)
        procs = fleet.snapshot()["gpu"]["processes"]["GPU-cccebab5-6be7-2a4d-6d66-fa7a59c3aa2f"]
        assert procs == [{"pid": 473, "name": "python3", "memory": 518 << 20}]
    finally:
        fleet.stop()
