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


# The host-key algorithms that select a known key of each type during negotiation (paramiko drops the
# SHA-1 "ssh-rsa" where it no longer supports it).
ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def _load(path: Path) -> paramiko.HostKeys:
    from workbench.errors import WorkbenchError

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WorkbenchError(f"cannot read the known hosts file {path}: {exc.strerror}",
                             hint="fix its permissions: host keys cannot be checked without it") from None
    keys = paramiko.HostKeys()
    for line in raw.splitlines():
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line.decode("utf-8"))
        except Exception:  # noqa: BLE001 - paramiko raises several types (InvalidHostKey is a bare Exception)
            continue
        if entry is not None:
            keys._entries.append(entry)  # what HostKeys.load does per line, without giving up on a bad one
    return keys


@dataclass
class Verdict:
    state: str                 # "known" | "unknown" | "changed"
    entry: str
    key_type: str
    fingerprint: str
    known_fingerprint: str | None = None
    source: str | None = None  # the known_hosts file holding the other key, for a changed one
    known_key_type: str | None = None


class HostKeyStore:
    def __init__(self, own: Path, system: tuple[Path, ...] = SYSTEM_FILES) -> None:
        self.own = own
        self.system = system

    def _files(self) -> list[Path]:
        return [p for p in (*self.system, self.own) if p.is_file()]

    def known_keys(self, hostname: str, port: int) -> list[tuple[paramiko.PKey, Path]]:
        """Every key recorded for the host, of any type, with the file that holds it. A file is read line
        by line: one malformed line (bad base64, a stray byte) is skipped, never the whole file, so a host
        whose key changed can never pass as merely unknown. A file that cannot be read at all is an error."""
        found = []
        for path in self._files():
            known = _load(path).lookup(host_entry(hostname, port)) or {}
            found += [(known[name], path) for name in known]
        return found

    def known_algorithms(self, hostname: str, port: int) -> list[str]:
        """The host-key algorithms to ask for first, so a host with several keys presents the one we know."""
        names = []
        for key, _ in self.known_keys(hostname, port):
            names += ALGORITHMS.get(key.get_name(), (key.get_name(),))
        return list(dict.fromkeys(names))

    def check(self, hostname: str, port: int, key: paramiko.PKey) -> Verdict:
        """Like OpenSSH: a host with any known key that presents another one, whatever its type, has a
        CHANGED key."""
        entry = host_entry(hostname, port)
        known = self.known_keys(hostname, port)
        if any(k.asbytes() == key.asbytes() for k, _ in known):
            return Verdict("known", entry, key.get_name(), fingerprint(key))
        if not known:
            return Verdict("unknown", entry, key.get_name(), fingerprint(key))
        # report the known key of the same type if there is one, else the first
        other, path = next(((k, p) for k, p in known if k.get_name() == key.get_name()), known[0])
        return Verdict("changed", entry, key.get_name(), fingerprint(key), fingerprint(other), str(path),
                       other.get_name())

    def trust(self, hostname: str, port: int, key: paramiko.PKey) -> None:
        """Appends the key to Workbench's own known_hosts (after the caller showed and confirmed it)."""
        self.own.parent.mkdir(parents=True, exist_ok=True)
        line = f"{host_entry(hostname, port)} {key.get_name()} {key.get_base64()}\n"
        fd = os.open(self.own, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(line)
