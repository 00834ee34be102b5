"""Host keys as OpenSSH checks them: the system known_hosts files and Workbench's own. A host is trusted
only by an explicit action; a changed key is refused, never replaced silently (nothing is ever added automatically)."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import paramiko

SYSTEM_FILES = (Path("~/.ssh/known_hosts").expanduser(), Path("/etc/ssh/ssh_known_hosts"))


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint: `SHA256:` + unpadded base64 of the key blob's digest."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def host_entry(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


@dataclass
class Verdict:
    state: str                 # "known" | "unknown" | "changed"
    entry: str
    key_type: str
    fingerprint: str
    known_fingerprint: str | None = None
    source: str | None = None  # the known_hosts file holding the other key, for a changed one


class HostKeyStore:
    def __init__(self, own: Path, system: tuple[Path, ...] = SYSTEM_FILES) -> None:
        self.own = own
        self.system = system

    def _files(self) -> list[Path]:
        return [p for p in (*self.system, self.own) if p.is_file()]

    def check(self, hostname: str, port: int, key: paramiko.PKey) -> Verdict:
        entry = host_entry(hostname, port)
        verdict = Verdict("unknown", entry, key.get_name(), fingerprint(key))
        for path in self._files():
            keys = paramiko.HostKeys()
            try:
                keys.load(str(path))
            except (OSError, paramiko.SSHException, ValueError):
                continue
            known = keys.lookup(entry)
            if not known:
                continue
            if key.get_name() in known:
                if known[key.get_name()] == key:
                    return Verdict("known", entry, key.get_name(), fingerprint(key))
                verdict = Verdict("changed", entry, key.get_name(), fingerprint(key),
                                  fingerprint(known[key.get_name()]), str(path))
        return verdict

    def trust(self, hostname: str, port: int, key: paramiko.PKey) -> None:
        """Appends the key to Workbench's own known_hosts (after the caller showed and confirmed it)."""
        self.own.parent.mkdir(parents=True, exist_ok=True)
        line = f"{host_entry(hostname, port)} {key.get_name()} {key.get_base64()}\n"
        fd = os.open(self.own, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(line)
