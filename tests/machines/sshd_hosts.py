"""Real sshd processes on loopback addresses, for the machine tests and benchmarks: each with its own host
key, our test user key authorised, and (for GPU hosts) a fake nvidia-smi first on the remote PATH."""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from helpers import GPU_FIXTURES, wait_for

FIXTURES = GPU_FIXTURES
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


def make_host(root: Path, name: str, address: str, authorized: Path, path_prefix: str | None,
              port: int | None = None) -> Host:
    d = root / name
    d.mkdir()
    fingerprint = keygen(d / "hostkey")
    port = port or _free_port(address)
    env_path = f"{path_prefix}:/usr/local/bin:/usr/bin:/bin" if path_prefix else "/usr/local/bin:/usr/bin:/bin"
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {address}\nHostKey {d / 'hostkey'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"Subsystem sftp internal-sftp\nSetEnv PATH={env_path} WB_GPU_FIXTURES={FIXTURES}\n"
    )
    return Host(address, port, fingerprint, d, config)


def make_fakegpu(root: Path) -> Path:
    fakegpu = root / "fakegpu" / "bin"
    fakegpu.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("fake_nvidia_smi.py"), fakegpu / "nvidia-smi")
    (fakegpu / "nvidia-smi").chmod(0o755)
    return fakegpu
