"""Real sshd processes on loopback addresses, for the machine tests and benchmarks: each with its own host
key, our test user key authorised, and (for GPU hosts) a fake nvidia-smi first on the remote PATH."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from helpers import GPU_FIXTURES, wait_for

FIXTURES = GPU_FIXTURES
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def keygen(path: Path, key_type: str = "ed25519", passphrase: str = "") -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-f", str(path)], check=True)
    return key_fingerprint(path)


def key_fingerprint(path: Path) -> str:
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

    def use_host_keys(self, *key_types: str) -> dict[str, str]:
        """Makes the next start() present host keys of these types only (e.g. "ecdsa", "rsa"; "ed25519" is
        the host's first key); each is made once. Returns {type: fingerprint}."""
        paths = {t: self.dir / ("hostkey" if t == "ed25519" else f"hostkey-{t}") for t in key_types}
        for key_type, path in paths.items():
            if not path.exists():
                keygen(path, key_type)
        lines = [l for l in self.config.read_text().splitlines() if not l.startswith("HostKey ")]
        self.config.write_text("\n".join([*(f"HostKey {p}" for p in paths.values()), *lines]) + "\n")
        return {key_type: key_fingerprint(path) for key_type, path in paths.items()}

    def known_hosts_line(self, key_type: str) -> str:
        """The known_hosts line for one of this host's keys (see use_host_keys)."""
        pub = self.dir / ("hostkey.pub" if key_type == "ed25519" else f"hostkey-{key_type}.pub")
        algorithm, blob = pub.read_text().split()[:2]
        return f"[{self.address}]:{self.port} {algorithm} {blob}\n"


class Agent:
    """A real ssh-agent of our own on a socket, stopped by its pid (never by name)."""

    def __init__(self, socket_path: Path) -> None:
        self.socket = socket_path
        self.process = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for(socket_path.exists, timeout=10)

    def add(self, key: Path, passphrase: str) -> None:
        """ssh-add with the passphrase given through an SSH_ASKPASS script, as a desktop would."""
        askpass = key.with_name(key.name + ".askpass")
        askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
        askpass.chmod(0o700)
        env = {**os.environ, "SSH_AUTH_SOCK": str(self.socket), "SSH_ASKPASS": str(askpass),
               "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
        subprocess.run(["ssh-add", str(key)], env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True,
                       timeout=20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


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


def trusted_loopback_host(root: Path, name: str) -> tuple[Host, Any]:
    """One sshd on 127.0.0.1 for root with a fresh user key, started, its host key trusted, and a
    Connection to it (not yet connected): what a benchmark needs of a host."""
    from workbench.machines.hostkeys import HostKeyStore
    from workbench.machines.ssh import Connection, SSHTarget, fetch_host_key

    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    user_key = root / "userkey"
    keygen(user_key)
    authorized = root / "authorized_keys"
    authorized.write_text((root / "userkey.pub").read_text())
    host = make_host(root, name, "127.0.0.1", authorized, None)
    host.start()
    hostkeys = HostKeyStore(root / "known_hosts", system=())
    target = SSHTarget(name, host.address, host.port, "root", [str(user_key)])
    hostkeys.trust(host.address, host.port, fetch_host_key(target, hostkeys))
    return host, Connection(target, hostkeys)


def wire_jump_and_target(ip: Callable[..., None], jump_ns: str, target_ns: str, links: tuple[str, str, str, str],
                         addresses: tuple[str, str, str, str], made: Callable[[str], None] = lambda dev: None) -> None:
    """Two veth pairs, each a /30 that is up: this machine (links[0]) <-> the jump namespace (links[1]), and
    the jump namespace (links[2]) <-> the target namespace (links[3]); `addresses` in the same order.
    `made` hears of the link made on this machine (deleting it deletes its peer)."""
    a_host, a_jump, b_jump, b_target = links
    host_side, jump_side, jump_inner, target = addresses
    ip("link", "add", a_host, "type", "veth", "peer", "name", a_jump)
    made(a_host)
    ip("link", "set", a_jump, "netns", jump_ns)
    ip("addr", "add", f"{host_side}/30", "dev", a_host)
    ip("link", "set", a_host, "up")
    ip("link", "add", b_jump, "type", "veth", "peer", "name", b_target)
    ip("link", "set", b_jump, "netns", jump_ns)
    ip("link", "set", b_target, "netns", target_ns)
    for ns, dev, address in ((jump_ns, a_jump, jump_side), (jump_ns, b_jump, jump_inner), (target_ns, b_target, target)):
        ip("-n", ns, "addr", "add", f"{address}/30", "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")
        ip("-n", ns, "link", "set", "lo", "up")
