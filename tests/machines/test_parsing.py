"""~/.ssh/config with Include and ProxyJump; nvidia-smi CSV with [N/A]; fingerprints as OpenSSH prints them."""

from __future__ import annotations

import subprocess

import paramiko

from workbench.machines.hostkeys import HostKeyStore, fingerprint
from workbench.machines.nvidia_smi import parse_query_line
from workbench.machines.ssh_config import _expanded_text, host_aliases, target_from_config


def test_ssh_config_follows_include_and_proxyjump(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    ssh = tmp_path / ".ssh"
    (ssh / "config.d").mkdir(parents=True)
    (ssh / "config").write_text("Include config.d/*\nHost bastion\n  HostName 10.0.0.1\n  User ops\n")
    (ssh / "config.d" / "gpu").write_text(
        "Host gpu-a\n  HostName 192.168.1.20\n  Port 2222\n  User alice\n  IdentityFile ~/.ssh/id_gpu\n"
        "  ProxyJump bastion\n")
    config = paramiko.SSHConfig.from_text(_expanded_text(ssh / "config"))
    assert host_aliases(config) == ["bastion", "gpu-a"]
    target = target_from_config("gpu-a", config)
    assert (target.hostname, target.port, target.user) == ("192.168.1.20", 2222, "alice")
    assert target.identity_files == [str(ssh / "id_gpu")]
    assert target.jump is not None and (target.jump.hostname, target.jump.user) == ("10.0.0.1", "ops")


def test_nvidia_smi_missing_values_are_none():
    line = ("0, GPU-cccebab5-6be7-2a4d-6d66-fa7a59c3aa2f, NVIDIA H100 80GB HBM3, 81559, 0, [N/A], 35, 72.85, "
            "700.00, [Not Supported], Disabled, 580.159.04")
    reading = parse_query_line(line)
    assert reading is not None
    assert reading.utilization is None and reading.fan is None  # missing, never 0
    assert reading.memory_used == 0 and reading.memory_total == 81559 << 20
    assert reading.power == 72.85 and reading.name == "NVIDIA H100 80GB HBM3"
    assert parse_query_line("No devices were found") is None


def test_fingerprint_matches_ssh_keygen(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    expected = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True).stdout.split()[1]
    key = paramiko.PKey.from_path(tmp_path / "k")
    assert fingerprint(key) == expected
    store = HostKeyStore(tmp_path / "known_hosts", system=())
    assert store.check("h", 2200, key).state == "unknown"
    store.trust("h", 2200, key)
    assert store.check("h", 2200, key).state == "known"
    assert store.check("h", 22, key).state == "unknown"  # a port is part of the host's identity
    assert (tmp_path / "known_hosts").read_text().startswith("[h]:2200 ssh-ed25519 ")
