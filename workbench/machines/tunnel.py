"""A local port forwarded through a host's SSH connection (a notebook session's JupyterLab on an SSH host):
127.0.0.1:PORT here, each connection to it carried by a direct-tcpip channel to a port on the host. The
listener stays bound while the connection is down: a client that arrives then waits while the connection is
made again (backing off, up to RETRY_FOR seconds), and once the host answers again new clients work on the
same local port. Nothing is installed or opened on the host."""

from __future__ import annotations

import errno
import socket
import threading
import time

import paramiko

from workbench import errors
from workbench.errors import WorkbenchError
from workbench.machines.ssh import Connection, SSHError, connect_timeout

# How long one client waits for its channel while the host does not answer, and the back-off between tries.
RETRY_FOR = 20.0
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 5.0
# How often the accept loop looks at the stop event (stop closes everything within this long).
POLL = 0.2
CHUNK = 65536


class PortInUse(errors.PortInUse):
    def __init__(self, port: int) -> None:
        super().__init__(f"127.0.0.1:{port} is already in use", hint="choose another with --port")
        self.port = port


def bind_local(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port (0: any free port). SO_REUSEADDR lets a restarted forwarder take
    its port back at once (connections of the last one still in TIME_WAIT); a live listener still refuses."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(port) from None
        raise WorkbenchError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                             hint="choose another with --port") from None
    return listener


class _Unreachable(Exception):
    """The host's side of one client cannot be opened now, and trying again will not help."""


class _Client:
    """One accepted local connection and, once opened, its channel, pumped both ways. Everything this side
    sends on the channel (data, EOF, CLOSE) goes under one lock, after checking the channel is still open:
    paramiko's own check and send are not atomic, so another thread's CLOSE could reach the wire first, and
    sshd drops the whole connection for anything sent on a channel after its CLOSE ("packet referred to
    nonexistent channel"). The channel's timeout keeps each send's wait for window short, so close() (a stop)
    never waits long for the lock."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.channel: paramiko.Channel | None = None
        self.closed = False
        self.lock = threading.Lock()

    def attach(self, channel: paramiko.Channel) -> bool:
        """False when the client was closed while its channel was being opened (the channel is closed too)."""
        channel.settimeout(POLL)
        with self.lock:
            self.channel = channel
            closed = self.closed
        if closed:
            self.close()
        return not closed

    def close(self) -> None:
        """Closes both sides; wakes both pump directions."""
        with self.lock:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if self.channel is not None:
                try:
                    self.channel.close()
                except (OSError, EOFError, paramiko.SSHException):  # the connection is gone: so is the channel
                    pass

    def _open(self) -> paramiko.Channel | None:
        """The channel, while neither side has closed it (hold the lock)."""
        channel = self.channel
        return None if self.closed or channel is None or channel.closed else channel

    def upstream(self) -> bool:
        """Local → host until either side ends; True when the local client half-closed (its EOF passed on:
        the host's answer may still be coming)."""
        try:
            while True:
                data = memoryview(self.sock.recv(CHUNK))
                if not data:
                    with self.lock:
                        channel = self._open()
                        if channel is not None:
                            channel.shutdown_write()
                        return channel is not None
                while data:
                    with self.lock:
                        channel = self._open()
                        if channel is None:
                            return False
                        try:
                            data = data[channel.send(data):]
                        except TimeoutError:  # no window yet: the lock is let go between tries
                            pass
        except (OSError, EOFError, paramiko.SSHException):
            return False

    def downstream(self) -> None:
        """Host → local until either side ends; its end ends the client."""
        channel = self.channel
        assert channel is not None
        try:
            while not self.closed:
                try:
                    data = channel.recv(CHUNK)
                except TimeoutError:
                    continue
                if not data:
                    return
                self.sock.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            self.close()


class Tunnel:
    """Serves 127.0.0.1:`port` (the listener's) → `remote_host`:`remote_port` as seen from the host."""

    def __init__(self, connection: Connection, listener: socket.socket, remote_host: str, remote_port: int) -> None:
        self.connection = connection
        self.listener = listener
        self.remote = (remote_host, remote_port)
        self.port: int = listener.getsockname()[1]
        # "up", "reconnecting: <why>", or "refused: <why>" (the host will not forward): for a status line
        self.state = "up"
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()

    def serve(self, stop: threading.Event) -> None:
        """Accepts clients until `stop` is set, each pumped on threads of its own; then closes the listener
        and every client. The connection is the caller's: it stays open."""
        self.listener.settimeout(POLL)
        try:
            while not stop.is_set():
                try:
                    sock, _ = self.listener.accept()
                except TimeoutError:
                    continue
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client = _Client(sock)
                with self._lock:
                    self._clients.add(client)
                threading.Thread(target=self._serve_client, args=(client, stop), name=f"tunnel-{self.port}",
                                 daemon=True).start()
        finally:
            self.listener.close()
            with self._lock:
                clients = list(self._clients)
            for client in clients:
                client.close()

    def _serve_client(self, client: _Client, stop: threading.Event) -> None:
        downstream = None
        try:
            try:
                if not client.attach(self._open_channel(client, stop)):
                    return
            except _Unreachable:
                return
            downstream = threading.Thread(target=client.downstream, daemon=True, name=f"tunnel-{self.port}-down")
            downstream.start()
            if client.upstream():
                downstream.join()
        finally:
            client.close()
            if downstream is not None:
                downstream.join()
            client.sock.close()
            with self._lock:
                self._clients.discard(client)

    def _open_channel(self, client: _Client, stop: threading.Event) -> paramiko.Channel:
        """The client's channel, through a connection made again as often as needed within RETRY_FOR seconds.
        A host that refuses the forward itself (nothing listens on the port, forwarding not allowed) answers
        at once: trying again would not help."""
        try:
            origin = client.sock.getpeername()
        except OSError:
            raise _Unreachable() from None
        deadline = time.monotonic() + RETRY_FOR
        backoff = FIRST_BACKOFF
        while True:
            transport = None
            try:
                transport = self.connection.transport()
                channel = transport.open_channel("direct-tcpip", self.remote, origin, timeout=connect_timeout())
                self.state = "up"
                return channel
            except paramiko.ChannelException as exc:
                prohibited = exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
                self.state = ("refused: the host's sshd refuses TCP forwarding (set AllowTcpForwarding yes "
                              "or local in its sshd_config)") if prohibited else "up"  # the host answered
                raise _Unreachable() from None
            except SSHError as exc:  # no connection could be made
                why = exc.message
            except (paramiko.SSHException, OSError, EOFError) as exc:
                # the connection is dead or silent: this one is dropped (the next transport() call makes a new
                # one). Only the transport that failed is closed, never one another client just made.
                why = f"{self.connection.target.name}: the SSH connection dropped ({exc or type(exc).__name__})"
                if transport is not None:
                    transport.close()
            self.state = f"reconnecting: {why}"
            if client.closed or time.monotonic() + backoff > deadline or stop.wait(backoff):
                raise _Unreachable()
            backoff = min(backoff * 2, MAX_BACKOFF)
