"""SSH hosts against real sshd on loopback: host keys (unknown, trusted, wrong fingerprint, changed), auth
failure, telemetry from the replayed H100 captures, a host without nvidia-smi."""

from __future__ import annotations

import time

from helpers import assert_one_line_error
from workbench.store import open_store


def add(cli, name, host, key):
    result = cli("machines", "add", name, "--ssh", host.ssh, "--identity", str(key), "--hourly-cost", "2.5", "--json")
    assert result.code == 0, result.err
    return result.json()


def test_unknown_key_is_refused_until_trusted_by_fingerprint(cli, ssh_env):
    added = add(cli, "gpu1", ssh_env.gpu, ssh_env.user_key)
    assert added["state"] == "host key unknown"
    assert added["fingerprint"] == ssh_env.gpu.fingerprint and added["key_type"] == "ssh-ed25519"
    refused = cli("machines", "stats", "gpu1")
    assert_one_line_error(refused, "presents an unknown host key", ssh_env.gpu.fingerprint, "machines trust gpu1")
    wrong = cli("machines", "trust", "gpu1", "--fingerprint", "SHA256:" + "A" * 43)
    assert_one_line_error(wrong, f"presents ssh-ed25519 {ssh_env.gpu.fingerprint}", "not trusted")
    no_tty = cli("machines", "trust", "gpu1")  # no terminal to confirm on, no --fingerprint: refused
    assert_one_line_error(no_tty, "host key not trusted")
    trusted = cli("machines", "trust", "gpu1", "--fingerprint", ssh_env.gpu.fingerprint, "--json")
    assert trusted.code == 0, trusted.err
    assert trusted.json()["trusted"] and not trusted.json()["already"]
    assert ssh_env.gpu.fingerprint in cli("machines", "trust", "gpu1").err  # idempotent: already trusted
    listed = {m["name"]: m for m in cli("machines", "list", "--json").json()}
    assert listed["gpu1"]["address"] == ssh_env.gpu.ssh and listed["gpu1"]["hourly_cost"] == 2.5
    assert listed["local"]["kind"] == "local"


def test_stats_replays_the_h100_over_ssh(cli, ssh_env):
    add(cli, "gpu2", ssh_env.gpu, ssh_env.user_key)
    assert cli("machines", "trust", "gpu2", "--fingerprint", ssh_env.gpu.fingerprint).code == 0
    stats = cli("machines", "stats", "gpu2", "--json")
    assert stats.code == 0, stats.err
    data = stats.json()
    gpu = data["gpus"][0]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["uuid"] == "GPU-cccebab5-6be7-2a4d-6d66-fa7a59c3aa2f"
    assert gpu["memory_total"] == 81559 << 20 and gpu["memory_used"] == 0
    assert gpu["power_limit"] == 700.0 and gpu["temperature"] == 35.0
    assert gpu["fan"] is None  # [N/A] is missing, not 0
    assert gpu["driver"] == "580.159.04" and gpu["mig"] == "Disabled"
    assert data["cpus"] >= 1 and len(data["load"]) == 3 and data["memory_total"] > 0
    text = cli("machines", "stats", "gpu2")
    assert "GPU0 NVIDIA H100 80GB HBM3" in text.out and "power 72.84W/700W" in text.out


def test_host_without_nvidia_smi_is_a_cpu_machine(cli, ssh_env):
    add(cli, "cpu1", ssh_env.cpu, ssh_env.user_key)
    assert cli("machines", "trust", "cpu1", "--fingerprint", ssh_env.cpu.fingerprint).code == 0
    data = cli("machines", "stats", "cpu1", "--json").json()
    assert data["gpus"] == [] and data["gpu_error"] == "no nvidia-smi: a CPU machine"


def test_auth_failure_is_one_line(cli, ssh_env):
    add(cli, "gpu3", ssh_env.gpu, ssh_env.other_key)  # a key the host does not accept
    assert cli("machines", "trust", "gpu3", "--fingerprint", ssh_env.gpu.fingerprint).code == 0
    assert_one_line_error(cli("machines", "stats", "gpu3"), "no key was accepted for root@127.0.0.1")


def test_bad_machine_input(cli, ssh_env, tmp_path, home):
    assert_one_line_error(cli("machines", "add", "bad name", "--ssh", "h"), "machine name 'bad name'")
    assert_one_line_error(cli("machines", "add", "x", "--ssh", "host:port"), "the port must be a number")
    assert_one_line_error(cli("machines", "add", "x", "--ssh", "h", "--identity", str(tmp_path / "nokey")),
                          "does not exist")
    assert_one_line_error(cli("machines", "add", "not-an-alias"), "not a Host in ~/.ssh/config")
    assert_one_line_error(cli("machines", "stats", "ghost"), "no machine 'ghost'")
    assert_one_line_error(cli("machines", "remove", "local"), "cannot be removed")
    down = cli("machines", "add", "down", "--ssh", "root@127.0.0.1:1", "--json")
    assert down.code == 0 and down.json()["state"] == "unreachable"
    assert_one_line_error(cli("machines", "stats", "down"), "cannot reach 127.0.0.1:1")
    store = open_store(home / "workbench.db")
    store.insert_run({"id": "downrun1", "project": "p", "project_path": "/p", "experiment": "e", "status": "queued",
                      "machine": "down", "executor": "docker", "created_at": time.time()})
    store.mark_running("downrun1", {"container": "c0ffee", "run_dir": "/h/runs/downrun1", "machine": "down"}, time.time())
    store.close()
    assert_one_line_error(cli("machines", "remove", "down"), "has 1 active run(s) (downrun1); not removed")
    gone = cli("runs", "rm", "downrun1", "--force")  # the host does not answer: the record goes, its files wait
    assert gone.code == 0 and "does not answer" in gone.err, gone.err
    assert cli("machines", "remove", "down").code == 0


def test_changed_host_key_is_refused_loudly(cli, ssh_env):
    host = ssh_env.gpu
    add(cli, "gpu4", host, ssh_env.user_key)
    assert cli("machines", "trust", "gpu4", "--fingerprint", host.fingerprint).code == 0
    old = host.fingerprint
    host.stop()
    host.new_host_key()
    host.start()
    refused = cli("machines", "stats", "gpu4")
    assert_one_line_error(refused, "HOST KEY CHANGED", host.fingerprint, old)
    assert_one_line_error(cli("machines", "trust", "gpu4", "--fingerprint", host.fingerprint), "HOST KEY CHANGED")
