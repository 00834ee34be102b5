"""~/.ssh/config Host entries (HostName, User, Port, IdentityFile, ProxyJump), with Include followed —
paramiko's parser does not follow Include by itself."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import paramiko

from workbench.machines.ssh import SSHTarget

DEFAULT_CONFIG = Path("~/.ssh/config").expanduser()


def _expanded_text(path: Path, depth: int = 0) -> str:
    if depth > 16 or not path.is_file():
        return ""
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0].lower() == "include":
            for pattern in words[1].split():
                pattern = os.path.expanduser(pattern)
                if not os.path.isabs(pattern):
                    pattern = str(Path("~/.ssh").expanduser() / pattern)
                for included in sorted(glob.glob(pattern)):
                    lines.append(_expanded_text(Path(included), depth + 1))
        else:
            lines.append(line)
    return "\n".join(lines)


def load_ssh_config(path: Path = DEFAULT_CONFIG) -> paramiko.SSHConfig:
    return paramiko.SSHConfig.from_text(_expanded_text(path))


def host_aliases(config: paramiko.SSHConfig) -> list[str]:
    return sorted(h for h in config.get_hostnames() if not any(c in h for c in "*?!"))


def target_from_config(alias: str, config: paramiko.SSHConfig, depth: int = 0) -> SSHTarget:
    entry = config.lookup(alias)
    jump = None
    if entry.get("proxyjump") and entry["proxyjump"].lower() != "none" and depth < 8:
        hops = [h.strip() for h in entry["proxyjump"].split(",") if h.strip()]
        for hop in hops:  # a,b: reach a, then b through a, then the target through b
            hop_target = parse_address(hop, name=hop, config=config, depth=depth + 1)
            hop_target.jump = jump
            jump = hop_target
    return SSHTarget(
        name=alias, hostname=entry.get("hostname", alias), port=int(entry.get("port", 22)),
        user=entry.get("user", os.environ.get("USER", "root")),
        identity_files=list(entry.get("identityfile", [])), jump=jump,
    )


def parse_address(address: str, *, name: str, config: paramiko.SSHConfig | None = None,
                  depth: int = 0) -> SSHTarget:
    """`[user@]host[:port]`; a bare alias known to ~/.ssh/config takes its settings from there."""
    user, _, hostport = address.rpartition("@")
    host, port = hostport, None
    if hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"{address!r}: the port must be a number")
        port = int(port_text)
    if config is not None and host in host_aliases(config):
        target = target_from_config(host, config, depth)
        target.name = name
    else:
        target = SSHTarget(name=name, hostname=host, user=os.environ.get("USER", "root"))
    if user:
        target.user = user
    if port is not None:
        target.port = port
    if not target.hostname:
        raise ValueError(f"{address!r}: no host name")
    return target
