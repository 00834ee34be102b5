"""~/.ssh/config Host entries (HostName, User, Port, IdentityFile, ProxyJump), with Include followed —
paramiko's parser does not follow Include by itself."""

from __future__ import annotations

import glob
import ipaddress
import os
import re
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


HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$")


def valid_host(host: str) -> bool:
    """An IPv4 or IPv6 address, or a DNS name (labels of letters, digits, '-' and '_' between dots)."""
    if _is_ip(host):
        return True
    labels = host.split(".")
    if len(host) > 253 or not all(len(label) <= 63 and HOST_LABEL.match(label) for label in labels):
        return False
    return not all(label.isascii() and label.isdigit() for label in labels)  # 300.1.1.1 is neither a name nor an address


def split_address(address: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (an IPv6 host in brackets when a port follows, `[::1]:22`) into its parts,
    each checked: raises ValueError with what is wrong."""
    user: str | None = None
    hostport = address
    if "@" in address:
        user, _, hostport = address.rpartition("@")
        if not user.strip() or any(c.isspace() or ord(c) < 32 for c in user):
            raise ValueError(f"{address!r}: the user before '@' is empty or has spaces")
    port_text = None
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket:
            raise ValueError(f"{address!r}: '[' without its ']'")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{address!r}: after ']' only ':PORT' may follow")
            port_text = rest[1:]
        if ":" not in host:
            raise ValueError(f"{address!r}: brackets are for IPv6 addresses ([::1]:22)")
    elif "]" in hostport:
        raise ValueError(f"{address!r}: ']' without its '['")
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    elif hostport.count(":") > 1:
        host = hostport  # a bare IPv6 address, or host:port:port
        if not _is_ip(host):
            raise ValueError(f"{address!r}: one port at most (an IPv6 address with a port goes in brackets: "
                             "[::1]:22)")
    else:
        host = hostport
    port = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()):
            raise ValueError(f"{address!r}: the port must be a number")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError(f"{address!r}: port {port} is outside 1-65535")
    if not host:
        raise ValueError(f"{address!r}: no host name")
    if not valid_host(host):
        raise ValueError(f"{address!r}: {host!r} is neither a host name nor an IP address")
    return user, host, port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def parse_address(address: str, *, name: str, config: paramiko.SSHConfig | None = None,
                  depth: int = 0) -> SSHTarget:
    """`[user@]host[:port]`; a bare alias known to ~/.ssh/config takes its settings from there."""
    user, host, port = split_address(address)
    if config is not None and host in host_aliases(config):
        target = target_from_config(host, config, depth)
        target.name = name
    else:
        target = SSHTarget(name=name, hostname=host, user=os.environ.get("USER", "root"))
    if user:
        target.user = user
    if port is not None:
        target.port = port
    return target
