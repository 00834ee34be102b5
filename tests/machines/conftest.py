"""Real sshd instances on loopback for the machine tests: a GPU host (a fake nvidia-smi on its PATH that
replays the H100 captures) and a CPU host without one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import REPO, require, wait_for

FIXTURES = REPO.parent / "shared" / "fixtures" / "gpu" / "h100-80gb"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    listed = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True, text=True, check=True)
    return listed.stdout.split()[1]  # SHA256:...


@dataclass
class Host:
    address: str
    port: int
    fingerprint: str
    dir: Path
    config: Path
    process: subprocess.Popen | None = None

    @property
    def ssh(self) -> str:
        return f"root@{self.address}:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.dir / "sshd.log", "ab"))

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex((self.address, self.port)) == 0
        wait_for(up, timeout=20)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def new_host_key(self) -> None:
        """Reinstalls the host with another key (what a man in the middle would present)."""
        for suffix in ("", ".pub"):
            (self.dir / f"hostkey{suffix}").unlink()
        self.fingerprint = keygen(self.dir / "hostkey")


@dataclass
class SSHEnv:
    user_key: Path
    other_key: Path
    gpu: Host
    cpu: Host


def _host(root: Path, name: str, address: str, authorized: Path, path_prefix: str | None) -> Host:
    d = root / name
    d.mkdir()
    fingerprint = keygen(d / "hostkey")
    port = _free_port(address)
    env_path = f"{path_prefix}:/usr/local/bin:/usr/bin:/bin" if path_prefix else "/usr/local/bin:/usr/bin:/bin"
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {address}\nHostKey {d / 'hostkey'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"Subsystem sftp internal-sftp\nSetEnv PATH={env_path} WB_GPU_FIXTURES={FIXTURES}\n"
    )
    return Host(address, port, fingerprint, d, config)


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
    fakegpu = root / "fakegpu" / "bin"
    fakegpu.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("fake_nvidia_smi.py"), fakegpu / "nvidia-smi")
    (fakegpu / "nvidia-smi").chmod(0o755)
    env = SSHEnv(user_key, other_key, _host(root, "gpu", "127.0.0.1", authorized, str(fakegpu)),
                 _host(root, "cpu", "127.0.0.2", authorized, None))
    env.gpu.start()
    env.cpu.start()
    yield env
    env.gpu.stop()
    env.cpu.stop()
