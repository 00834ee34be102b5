"""A deployment's endpoint port and listen address: checked before anything is started, and whether a TCP
listener already holds the port where the proxy would listen, here or on an SSH host.

The holder is read from the kernel's table of sockets (/proc/net/tcp and tcp6, LISTEN state), not by
connecting to 127.0.0.1: a port held on another address of the machine accepts nothing on loopback, yet
Docker cannot publish on it for every address. Two listeners on one port conflict when their addresses are
the same or either is a wildcard (0.0.0.0 or ::; a :: listener usually takes IPv4 too, so it is counted as
holding both)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

LISTEN_STATE = "0A"
TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
HOST_TIMEOUT = 15.0


def check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise WorkbenchError(f"port {port} is not a TCP port", hint="use a port from 1 to 65535")


def check_bind(bind: str) -> None:
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        raise WorkbenchError(f"the listen address {bind!r} is not an IP address",
                             hint='use "0.0.0.0" (every address), "127.0.0.1" (this machine only) or one of '
                                  "the machine's addresses") from None


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A /proc/net/tcp{,6} address: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    found = ipaddress.ip_address(words)
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped:
        return found.ipv4_mapped
    return found


def listeners(table: str) -> list[tuple[str, int]]:
    """(address, port) of every LISTEN socket in the text of /proc/net/tcp or tcp6."""
    found = []
    for line in table.splitlines():  # a header line has no address (and no state) and is passed over
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN_STATE or ":" not in fields[1]:
            continue
        hex_address, hex_port = fields[1].rsplit(":", 1)
        try:
            found.append((str(_address(hex_address)), int(hex_port, 16)))
        except ValueError:
            continue
    return found


def _conflicts(held: str, bind: str) -> bool:
    held_ip, bind_ip = ipaddress.ip_address(held), ipaddress.ip_address(bind)
    return held_ip == bind_ip or held_ip.is_unspecified or bind_ip.is_unspecified


def holder(tables: list[str], bind: str, port: int) -> str | None:
    """The address whose listener on `port` conflicts with listening on (bind, port), None when free."""
    for text in tables:
        for held, held_port in listeners(text):
            if held_port == port and _conflicts(held, bind):
                return held
    return None


def holder_here(bind: str, port: int) -> str | None:
    """Which address of this machine holds `port` in a way that conflicts with (bind, port)."""
    tables = []
    for path in TABLES:
        try:
            tables.append(Path(path).read_text())
        except OSError:  # no IPv6 here
            continue
    return holder(tables, bind, port)


def holder_on_host(connection: Any, bind: str, port: int) -> str | None:
    """The same on an SSH host (its tables read through `connection.run`)."""
    code, out, err = connection.run(["sh", "-c", "cat /proc/net/tcp; cat /proc/net/tcp6 2>/dev/null; true"],
                                    timeout=HOST_TIMEOUT)
    if code != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise WorkbenchError(f"could not read which ports are in use on the host: "
                             f"{detail[-1] if detail else f'exit {code}'}")
    return holder([out.decode(errors="replace")], bind, port)
