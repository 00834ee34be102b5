"""HTTP asks from where Workbench runs to a deployment's containers (a version's health path and smoke
request, the proxy's metrics): straight to the container's address on this machine's engine, or through
the SSH connection to a host (a direct-tcpip channel to the container's address there: nothing to install
on the host, no port opened). One request per connection (HTTP/1.0), the whole answer read."""

from __future__ import annotations

import socket
from typing import Any, Callable, NamedTuple

from workbench.errors import WorkbenchError

TIMEOUT = 3.0
MAX_BODY = 1 << 20  # a body is read up to 1 MiB (a health page, a smoke answer, the proxy's metrics)


class Answer(NamedTuple):
    status: int
    body: bytes


# http(address, port, method="GET", path="/", body=None, headers=None) -> the answer, None when nothing
# (or nothing HTTP) answered within TIMEOUT
Http = Callable[..., "Answer | None"]
Probe = Callable[[str, int, str], "int | None"]


def _request(method: str, path: str, body: bytes | None, headers: dict[str, str] | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.0", "Host: workbench", "Connection: close"]
    fields = dict(headers or {})
    if body is not None:
        fields.setdefault("Content-Type", "application/json")
        fields["Content-Length"] = str(len(body))
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def _dechunk(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def exchange(conn: Any, method: str = "GET", path: str = "/", body: bytes | None = None,
             headers: dict[str, str] | None = None) -> Answer | None:
    """Sends one request on an open stream (a socket or an SSH channel) and reads the answer: the body by
    its Content-Length, else until the other side closes (at most MAX_BODY). None when it is not HTTP."""
    conn.sendall(_request(method, path, body, headers))
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *field_lines = head.split(b"\r\n")
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in field_lines)}
    length = fields.get(b"content-length", b"")
    wanted = min(int(length), MAX_BODY) if length.isdigit() else MAX_BODY
    while len(rest) < wanted:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    rest = rest[:wanted]
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        rest = _dechunk(rest)
    return Answer(int(parts[1]), rest)


def local_http(address: str, port: int, method: str = "GET", path: str = "/", body: bytes | None = None,
               headers: dict[str, str] | None = None) -> Answer | None:
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT) as sock:
            sock.settimeout(TIMEOUT)
            return exchange(sock, method, path, body, headers)
    except OSError:
        return None


def probe_over(http: Http) -> Probe:
    """A health probe (the status only) over an HTTP asker."""
    def probe(address: str, port: int, path: str) -> int | None:
        answer = http(address, port, path=path)
        return answer.status if answer else None
    return probe


local_probe: Probe = probe_over(local_http)


def ssh_http(transport: Callable[[], Any]) -> Http:
    """HTTP through the host: `transport()` gives the connection's live paramiko transport."""
    import paramiko

    def http(address: str, port: int, method: str = "GET", path: str = "/", body: bytes | None = None,
             headers: dict[str, str] | None = None) -> Answer | None:
        try:
            channel = transport().open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=TIMEOUT)
        except paramiko.ChannelException as exc:
            if exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED:
                raise WorkbenchError("the host's sshd refuses TCP forwarding, which Workbench uses to ask a "
                                     "deployment's containers", hint="set AllowTcpForwarding yes (or local) in "
                                     "its sshd_config for your user") from None
            return None
        except (paramiko.SSHException, OSError, EOFError):
            return None
        try:
            channel.settimeout(TIMEOUT)
            return exchange(channel, method, path, body, headers)
        except (OSError, socket.timeout, paramiko.SSHException):
            return None
        finally:
            channel.close()
    return http


def ssh_probe(transport: Callable[[], Any]) -> Probe:
    """A health probe (status only) through the host."""
    return probe_over(ssh_http(transport))
