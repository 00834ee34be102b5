"""SSH connections through paramiko: host keys verified before authentication, agent or key-file auth
(no passwords, none stored), ProxyJump through a direct-tcpip channel, a bounded number of channels per
connection, commands whose stdout and stderr are read together (no window deadlock), and a liveness check:
a host that stops answering without refusing (a Wi-Fi drop, a silent partition) closes its connection within
`dead_after()` seconds, so nothing waits on a dead socket."""

from __future__ import annotations

import itertools
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from workbench.errors import WorkbenchError
from workbench.machines.hostkeys import HostKeyStore, Verdict

# paramiko logs handshake failures with tracebacks; we report them ourselves, in one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

# Seconds to reach a host (TCP connect, then the SSH handshake, each): a silent host fails a command in
# about this long. WORKBENCH_SSH_TIMEOUT overrides it (a link that is slow to answer).
CONNECT_TIMEOUT = 4.0
# A connection's liveness: a keepalive that asks for a reply every ALIVE_INTERVAL seconds; no reply within
# dead_after() seconds (WORKBENCH_SSH_DEAD_AFTER, default DEAD_AFTER) closes the connection, and with it every
# channel, SFTP read and Docker stream on it. The kernel gives up on unacknowledged data as soon (TCP_USER_TIMEOUT).
ALIVE_INTERVAL = 2.0
DEAD_AFTER = 6.0
# After a host did not answer, this process's further uses of its connection fail at once for this long
# (a command that touches the host twice waits once).
DOWN_MEMO = 5.0
# Channels open at once per connection, for commands, Docker (dial-stdio, log streams) and snapshot uploads
# together: sshd's MaxSessions (10 by default, per connection) refuses more; the host's SFTP session and the
# telemetry stream take two more, and one is left spare.
MAX_CHANNELS = 7
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")


def _seconds(variable: str, default: float) -> float:
    try:
        return max(0.5, float(os.environ.get(variable, default)))
    except ValueError:
        return default


def connect_timeout() -> float:
    return _seconds("WORKBENCH_SSH_TIMEOUT", CONNECT_TIMEOUT)


def dead_after() -> float:
    return _seconds("WORKBENCH_SSH_DEAD_AFTER", DEAD_AFTER)


class SSHError(WorkbenchError):
    state = "unreachable"


class HostKeyUnknown(SSHError):
    state = "host key unknown"

    def __init__(self, name: str, verdict: Verdict) -> None:
        super().__init__(f"{name} ({verdict.entry}) presents an unknown host key: {verdict.key_type} "
                         f"{verdict.fingerprint}", hint=f"check it, then `workbench machines trust {name}`")
        self.verdict = verdict


class HostKeyChanged(SSHError):
    state = "host key changed"

    def __init__(self, name: str, verdict: Verdict) -> None:
        super().__init__(f"HOST KEY CHANGED for {name} ({verdict.entry}): it now presents {verdict.key_type} "
                         f"{verdict.fingerprint} but {verdict.source} has {verdict.known_key_type} "
                         f"{verdict.known_fingerprint}. "
                         "Someone may be intercepting the connection; refusing to connect",
                         hint="if the host was really reinstalled, remove its old line from that file")
        self.verdict = verdict


class AuthFailed(SSHError):
    state = "auth failed"


@dataclass
class SSHTarget:
    name: str
    hostname: str
    port: int = 22
    user: str = "root"
    identity_files: list[str] = field(default_factory=list)
    jump: "SSHTarget | None" = None

    @property
    def address(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname  # an IPv6 address
        return f"{self.user}@{host}" + (f":{self.port}" if self.port != 22 else "")


def target_to_dict(target: SSHTarget) -> dict:
    return {"name": target.name, "hostname": target.hostname, "port": target.port, "user": target.user,
            "identity_files": target.identity_files, "jump": target_to_dict(target.jump) if target.jump else None}


def target_from_dict(data: dict) -> SSHTarget:
    return SSHTarget(name=data["name"], hostname=data["hostname"], port=data["port"], user=data["user"],
                     identity_files=list(data.get("identity_files") or []),
                     jump=target_from_dict(data["jump"]) if data.get("jump") else None)


def _key_files(target: SSHTarget, notes: list[str]) -> Iterator[paramiko.PKey]:
    """The identity files' keys, each read only when the keys before it were refused. Like OpenSSH, a file
    others can read is never used; one that needs a passphrase is left to the agent; each skip is noted."""
    paths = target.identity_files or [p for p in DEFAULT_IDENTITIES if Path(p).expanduser().is_file()]
    for path in paths:
        full = Path(path).expanduser()
        try:
            mode = full.stat().st_mode
        except OSError:
            notes.append(f"identity file {full} does not exist")
            continue
        if mode & 0o077:
            notes.append(f"UNPROTECTED PRIVATE KEY FILE {full} (mode {mode & 0o777:04o}) was not used: "
                         f"chmod 600 {full}")
            continue
        try:
            key = paramiko.PKey.from_path(full)
        # cryptography raises TypeError for an encrypted OpenSSH-format key read without a passphrase
        except (paramiko.PasswordRequiredException, TypeError):
            notes.append(f"{full} needs a passphrase: load it with ssh-add {full}")
            continue
        except (paramiko.SSHException, ValueError, OSError) as exc:
            notes.append(f"cannot read identity file {full}: {exc}")
            continue
        yield key


def _authenticate(transport: paramiko.Transport, target: SSHTarget) -> None:
    """Agent keys first, then the identity files (as `ssh` does); no passwords."""
    notes: list[str] = []
    agent = paramiko.Agent()
    try:
        for key in itertools.chain(agent.get_keys(), _key_files(target, notes)):
            try:
                transport.auth_publickey(target.user, key)
            except paramiko.AuthenticationException:
                continue
            if transport.is_authenticated():
                return
    finally:
        agent.close()
    raise AuthFailed(f"{target.name}: no key was accepted for {target.user}@{target.hostname}"
                     + "".join(f"; {note}" for note in notes),
                     hint="load your key in ssh-agent or pass --identity FILE")


def _handshake(target: SSHTarget, hostkeys: HostKeyStore, sock: object, timeout: float, who: str
               ) -> paramiko.Transport:
    """Banner and key exchange over `sock`, asking first for the host-key algorithms already known for the
    host (as OpenSSH does), so a host with several keys presents the one we know."""
    transport = paramiko.Transport(sock)
    options = transport.get_security_options()
    known = [n for n in hostkeys.known_algorithms(target.hostname, target.port) if n in options.key_types]
    options.key_types = known + [n for n in options.key_types if n not in known]
    done = threading.Event()
    try:
        # start_client(timeout=...) returns quietly when the time is up, and a silent server then surfaces
        # later as "No existing session": wait on an event of our own instead.
        transport.start_client(event=done)
        if not done.wait(timeout):
            raise SSHError(f"{who} did not answer the SSH handshake within {timeout:g}s (timed out)")
        if not transport.is_active():
            raise SSHError(f"{who} failed the SSH handshake: {transport.get_exception() or 'connection closed'}")
    except BaseException:
        transport.close()
        raise
    return transport


def _connect(target: SSHTarget, hostkeys: HostKeyStore, timeout: float, via: str | None = None
             ) -> tuple[paramiko.Transport, paramiko.Transport | None]:
    """A transport to `target` past the key exchange (its host key not checked yet), and the verified jump
    transport it runs through, if any. `via` names the machine whose jump host `target` is."""
    name = f"{via}: jump host {target.name}" if via else target.name
    address = f"{target.hostname}:{target.port}"
    jump_transport = None
    try:
        if target.jump is not None:
            jump_transport = open_transport(target.jump, hostkeys, timeout, via=target.name)
            try:
                sock = jump_transport.open_channel("direct-tcpip", (target.hostname, target.port),
                                                   ("127.0.0.1", 0), timeout=timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise SSHError(f"{target.name}: jump host {target.jump.name} cannot reach {address}: {exc}") from None
        else:
            try:
                sock = socket.create_connection((target.hostname, target.port), timeout=timeout)
                _tune(sock)
            except TimeoutError:
                raise SSHError(f"{name}: {address} does not answer (nothing within {timeout:g}s)") from None
            except OSError as exc:
                raise SSHError(f"{name}: cannot reach {address}: {exc.strerror or exc}") from None
        return _handshake(target, hostkeys, sock, timeout, name if via else f"{name}: {address}"), jump_transport
    except BaseException:
        if jump_transport is not None:
            jump_transport.close()
        raise


def _tune(sock: socket.socket) -> None:
    """paramiko leaves Nagle on: every small request (a channel open, an SFTP stat) would wait ~40 ms for the
    peer's delayed ACK. The kernel is told to give up on data the peer has not acknowledged for dead_after()
    seconds, and to probe an idle connection, so a silent peer surfaces as an error, not a hang."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", ALIVE_INTERVAL), ("TCP_KEEPINTVL", ALIVE_INTERVAL), ("TCP_KEEPCNT", 3),
                          ("TCP_USER_TIMEOUT", dead_after() * 1000)):
        if hasattr(socket, option):  # Linux; elsewhere the liveness check alone decides
            try:
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), int(value))
            except OSError:
                pass


def _received(transport: paramiko.Transport) -> int | None:
    """How many packets the host has sent us so far (paramiko keeps the count for its MACs; None where a
    paramiko release no longer has it: then only answered keepalives count)."""
    return getattr(transport.packetizer, "_Packetizer__sequence_number_in", None)


def _watch_liveness(transport: paramiko.Transport, name: str) -> None:
    """Asks the host for a reply every ALIVE_INTERVAL seconds (OpenSSH answers `keepalive@openssh.com`, with a
    refusal, as its own ServerAliveInterval expects). The host counts as alive while it answers or sends
    anything at all (a reply queued behind a large upload on a slow link is not a dead host); nothing heard for
    dead_after() seconds while a keepalive is out closes the transport, and with it every channel on it.
    Each ask runs on a short thread of its own: paramiko's wait for a reply has no timeout of its own."""
    limit = dead_after()
    heard_at, seen = time.monotonic(), _received(transport)
    asked_at, pending = float("-inf"), None
    while transport.is_active():
        now = time.monotonic()
        count = _received(transport)
        if count != seen:
            seen, heard_at = count, now
        if pending is not None and pending.is_set():
            pending, heard_at = None, now
        if pending is None and now - asked_at >= ALIVE_INTERVAL:
            pending, asked_at = threading.Event(), now
            threading.Thread(target=_ask, args=(transport, pending), name=f"ssh-ping-{name}", daemon=True).start()
        elif pending is not None and now - max(heard_at, asked_at) >= limit:
            transport._workbench_dead = f"no answer for {limit:g}s"  # type: ignore[attr-defined]
            transport.close()
            return
        time.sleep(0.25)


def _ask(transport: paramiko.Transport, answered: threading.Event) -> None:
    try:
        transport.global_request("keepalive@openssh.com", wait=True)
    except Exception:  # noqa: BLE001 - a closed transport: the watcher sees it
        pass
    answered.set()


def open_transport(target: SSHTarget, hostkeys: HostKeyStore, timeout: float | None = None,
                   via: str | None = None) -> paramiko.Transport:
    """A verified, authenticated transport to `target` (through its jump host when it has one), watched for
    liveness."""
    timeout = connect_timeout() if timeout is None else timeout
    transport, jump_transport = _connect(target, hostkeys, timeout, via)
    try:
        try:
            verdict = hostkeys.check(target.hostname, target.port, transport.get_remote_server_key())
            if verdict.state == "unknown":
                raise HostKeyUnknown(target.name, verdict)
            if verdict.state == "changed":
                raise HostKeyChanged(target.name, verdict)
            _authenticate(transport, target)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(f"{target.name}: SSH handshake with {target.hostname}:{target.port} failed: "
                           f"{exc}") from None
    except BaseException:
        transport.close()
        if jump_transport is not None:
            jump_transport.close()
        raise
    transport._workbench_jump = jump_transport  # type: ignore[attr-defined]  # closed with it
    threading.Thread(target=_watch_liveness, args=(transport, target.name), name=f"ssh-alive-{target.name}",
                     daemon=True).start()
    return transport


def fetch_host_key(target: SSHTarget, hostkeys: HostKeyStore, timeout: float | None = None) -> paramiko.PKey:
    """The key `target` presents (through its jump host, which must itself be trusted); no authentication."""
    transport, jump_transport = _connect(target, hostkeys, connect_timeout() if timeout is None else timeout)
    try:
        return transport.get_remote_server_key()
    finally:
        transport.close()
        if jump_transport is not None:
            jump_transport.close()


def remote_command(argv: list[str]) -> str:
    """Every argument quoted: the remote shell sees exactly these words."""
    return " ".join(shlex.quote(a) for a in argv)


class Connection:
    """One persistent connection per host, shared by telemetry and execution. A host that did not answer is
    not asked again by this process for DOWN_MEMO seconds (the same error at once); close() never waits for a
    connect in progress (a CLI exiting while a reconcile thread still waits for a silent host)."""

    def __init__(self, target: SSHTarget, hostkeys: HostKeyStore) -> None:
        self.target = target
        self.hostkeys = hostkeys
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()
        self._generation = 0  # each close() moves it on: a connect that began before a close is not kept
        self._down: tuple[float, SSHError] | None = None  # when a connect failed, and how
        self.channels = threading.BoundedSemaphore(MAX_CHANNELS)  # see MAX_CHANNELS

    @property
    def connected(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    def transport(self) -> paramiko.Transport:
        with self._lock:
            transport = self._transport
            if transport is not None and transport.is_active():
                return transport
            self.close_transport()
            if self._down is not None and time.monotonic() - self._down[0] < DOWN_MEMO:
                raise SSHError(self._down[1].message, hint=self._down[1].hint)
            generation = self._generation
            try:
                made = open_transport(self.target, self.hostkeys)
            except SSHError as exc:
                if type(exc) is SSHError:  # the host did not answer (not a key or auth problem)
                    self._down = (time.monotonic(), exc)
                raise
            self._down = None
            self._transport = made
            if self._generation != generation:  # closed while connecting: not kept (close() saw None)
                self.close_transport()
                raise SSHError(f"{self.target.name}: its connection was closed while it was being made")
            return made

    def dropped(self) -> str:
        """Why the connection is gone, when the liveness check closed it ("" otherwise)."""
        transport = self._transport
        return getattr(transport, "_workbench_dead", "") if transport is not None else ""

    def run(self, argv: list[str], timeout: float = 30.0, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Runs argv remotely; returns (exit status, stdout, stderr), both streams drained as they come."""
        with self.channels:
            try:
                channel = self.transport().open_session(timeout=connect_timeout())
                channel.settimeout(0.1)
                channel.exec_command(remote_command(argv))
            except paramiko.ChannelException as exc:  # refused by the host (MaxSessions): the connection is fine
                raise WorkbenchError(f"{self.target.name}: the host refused another SSH channel ({exc}); "
                                     "too many at once on one connection") from None
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self.close_transport()
                raise SSHError(f"{self.target.name}: cannot run {argv[0]}: {exc}") from None
            out, err = bytearray(), bytearray()
            # stdin goes as the channel's window allows, between reads: a large script (a snapshot's
            # manifest) never blocks on a command that is busy writing its output
            pending = memoryview(stdin) if stdin is not None else None
            deadline = time.monotonic() + timeout
            try:
                while True:
                    progressed = False
                    if pending is not None:
                        if not pending:
                            channel.shutdown_write()
                            pending = None
                        elif channel.send_ready():
                            try:
                                pending = pending[channel.send(pending[:65536]):]
                            except (paramiko.SSHException, OSError, EOFError) as exc:
                                self.close_transport()
                                raise SSHError(f"{self.target.name}: cannot run {argv[0]}: {exc}") from None
                            progressed = True
                    while channel.recv_ready():
                        out += channel.recv(65536)
                        progressed = True
                    while channel.recv_stderr_ready():
                        err += channel.recv_stderr(65536)
                        progressed = True
                    if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                        break
                    if not channel.get_transport().is_active():
                        raise SSHError(f"{self.target.name}: the connection dropped while {argv[0]} ran"
                                       + (f" ({self.dropped()})" if self.dropped() else ""))
                    if time.monotonic() > deadline:
                        raise SSHError(f"{self.target.name}: {argv[0]} did not finish within {timeout:.0f}s")
                    if not progressed:
                        time.sleep(0.005)
                return channel.recv_exit_status(), bytes(out), bytes(err)
            finally:
                try:
                    channel.close()
                except (EOFError, OSError, paramiko.SSHException):
                    pass

    def close_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            jump = getattr(transport, "_workbench_jump", None)
            for closing in (transport, jump):
                if closing is not None:
                    try:
                        closing.close()
                    except (EOFError, OSError, paramiko.SSHException):
                        pass

    def close(self) -> None:
        """Closes the transport without waiting for the lock (a connect in progress on another thread is
        closed as soon as it completes); a later use connects again."""
        self._generation += 1
        self.close_transport()
