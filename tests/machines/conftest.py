"""Real sshd instances on loopback for the machine tests: a GPU host (a fake nvidia-smi on its PATH that
replays the H100 captures) and a CPU host without one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import require
from sshd_hosts import FIXTURES, SSHD, Host, keygen, make_fakegpu, make_host


@dataclass
class SSHEnv:
    user_key: Path
    other_key: Path
    gpu: Host
    cpu: Host


@pytest.fixture(scope="session")
def ssh_env(tmp_path_factory):
    require(os.path.exists(SSHD), "openssh-server (sshd) is not installed")
    require(FIXTURES.is_dir(), f"GPU fixtures not found at {FIXTURES}")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("ssh")
    user_key, other_key = root / "userkey", root / "otherkey"
    keygen(user_key)
    keygen(other_key)
    authorized = root / "authorized_keys"
    authorized.write_text((root / "userkey.pub").read_text())
    fakegpu = make_fakegpu(root)
    env = SSHEnv(user_key, other_key, make_host(root, "gpu", "127.0.0.1", authorized, str(fakegpu)),
                 make_host(root, "cpu", "127.0.0.2", authorized, None))
    env.gpu.start()
    env.cpu.start()
    yield env
    env.gpu.stop()
    env.cpu.stop()
