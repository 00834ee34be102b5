"""Asking a serving container's health path, from where Workbench runs: straight to its address on this
machine's deployments network, or through the SSH connection to a host (a direct-tcpip channel to the
container's address there: nothing to install on the host, no port opened)."""

from __future__ import annotations

import socket
from typing import Any, Callable

from workbench.errors import WorkbenchError

TIMEOUT = 3.0


def http_status(conn: Any, path: str) -> int | None:
    """Sends `GET path` on an open stream (a socket or an SSH channel); the status code, None when the
    answer is not HTTP."""
    conn.sendall(f"GET {path} HTTP/1.0\r\nHost: workbench\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"\r\n" not in data and len(data) < 4096:
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    parts = data.split(b"\r\n", 1)[0].split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def local_probe(address: str, port: int, path: str) -> int | None:
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT) as sock:
            sock.settimeout(TIMEOUT)
            return http_status(sock, path)
    except OSError:
        return None


def ssh_probe(transport: Callable[[], Any]) -> Callable[[str, int, str], int | None]:
    """A probe through the host: `transport()` gives the connection's live paramiko transport."""
    import paramiko

    def probe(address: str, port: int, path: str) -> int | None:
        try:
            channel = transport().open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=TIMEOUT)
        except paramiko.ChannelException as exc:
            if exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED:
                raise WorkbenchError("the host's sshd refuses TCP forwarding, which Workbench uses to ask a "
                                     "deployment's health", hint="set AllowTcpForwarding yes (or local) in its "
                                     "sshd_config for your user") from None
            return None
        except (paramiko.SSHException, OSError, EOFError):
            return None
        try:
            channel.settimeout(TIMEOUT)
            return http_status(channel, path)
        except (OSError, socket.timeout, paramiko.SSHException):
            return None
        finally:
            channel.close()
    return probe


def local_listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
            return True
    except OSError:
        return False


def ssh_listening(transport: Callable[[], Any]) -> Callable[[int], bool]:
    """Whether something on the host accepts connections on `port` (asked from the host itself)."""
    import paramiko

    def listening(port: int) -> bool:
        try:
            transport().open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=TIMEOUT).close()
            return True
        except (paramiko.SSHException, OSError, EOFError):
            return False
    return listening
