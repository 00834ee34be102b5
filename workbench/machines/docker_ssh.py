"""The Docker engine of an SSH host, through docker-py: every HTTP connection of the client is a session
channel on the host's one `Connection` (ProxyJump, ~/.ssh/config and our host keys honoured) running
`docker system dial-stdio`, so the host's docker CLI relays it to its engine (its DOCKER_HOST and context
included). docker-py's own ssh:// transport makes an SSH client of its own, so it is not used.

Import this module only for remote machines: it imports docker-py, requests and paramiko."""

from __future__ import annotations

import io
import socket
import threading
import time
import weakref
from typing import Any, Callable

import docker
import docker.errors
import paramiko
import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from workbench.errors import EngineUnavailable
from workbench.machines.ssh import MAX_CHANNELS, Connection, SSHError, connect_timeout

DIAL_COMMAND = "docker system dial-stdio"
POOL_SIZE = 2  # idle HTTP connections (channels, each with its dial-stdio) kept for reuse: they hold channels
PING_TIMEOUT = 10.0
CHANNEL_WAIT = 10.0  # seconds a request waits for one of its connection's channels to free up
_SHELL_PREFIXES = ("bash: line 1: ", "bash: ", "sh: 1: ", "sh: ", "zsh:1: ")


class ChannelOpenError(ConnectionError):
    """No channel to the host's engine could be opened (an OSError, as a refused socket connect is)."""


def _close_channel(channel: paramiko.Channel, release: Callable[[], None]) -> None:
    """Wakes any reader (or poller of its fileno) first: paramiko's close() alone closes the pipe a poller
    may be blocked on without waking it. Then closes it (dial-stdio on the host sees EOF and ends) and gives
    its slot back. Run once, by the socket's finalizer."""
    try:
        channel.in_buffer.close()
        channel.close()
    except (EOFError, OSError, paramiko.SSHException):
        pass
    finally:
        release()


def _timeout(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


class ChannelSocket:
    """A paramiko channel as the socket that http.client, urllib3 and docker-py use: recv/recv_into/send/
    sendall, timeouts, shutdown, fileno for poll(), and makefile() as socket.socket does it, so that
    `response.raw._fp.fp.raw._sock` is this object (docker-py's CancellableStream.close() and
    _get_raw_response_socket walk that path). As with a socket, close() while a makefile() is open waits for
    it to close, unless the socket was shut down first: then the channel is closed at once."""

    def __init__(self, channel: paramiko.Channel, release: Callable[[], None]) -> None:
        self.channel = channel
        self._io_refs = 0
        self._closed = False
        self._shut = False
        self._finalizer = weakref.finalize(self, _close_channel, channel, release)

    # reading and writing ------------------------------------------------------------------------
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self.channel.recv(bufsize)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.channel.recv(nbytes or len(view))
        view[:len(data)] = data
        return len(data)

    def send(self, data: Any, flags: int = 0) -> int:
        return self.channel.send(bytes(data))

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.channel.sendall(bytes(data))

    # socket options -----------------------------------------------------------------------------
    def settimeout(self, value: Any) -> None:
        self.channel.settimeout(_timeout(value))

    def gettimeout(self) -> float | None:
        return self.channel.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self.channel.setblocking(flag)

    def fileno(self) -> int:
        """A pipe that paramiko makes readable when data (or EOF) arrives, for select/poll; -1 once closed."""
        if not self._finalizer.alive:
            return -1
        return self.channel.fileno()

    # ending -------------------------------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._shut = True
            self.channel.in_buffer.close()  # a blocked recv (or poll on fileno) returns EOF now
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            try:
                self.channel.shutdown_write()  # dial-stdio half-closes to the engine, which ends the request
            except (EOFError, OSError, paramiko.SSHException):
                pass

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0 or self._shut:
            self._finalizer()

    def makefile(self, mode: str = "r", buffering: int | None = None, **_: Any) -> Any:
        if set(mode) - {"r", "w", "b"} or "b" not in mode:
            raise ValueError(f"invalid mode {mode!r} (only binary modes)")
        rawmode = ("r" if "r" in mode else "") + ("w" if "w" in mode else "")
        raw = socket.SocketIO(self, rawmode)  # type: ignore[arg-type]
        self._io_refs += 1
        if buffering == 0:
            return raw
        size = io.DEFAULT_BUFFER_SIZE if buffering in (None, -1) else buffering
        if rawmode == "rw":
            return io.BufferedRWPair(raw, raw, size)
        return io.BufferedReader(raw, size) if rawmode == "r" else io.BufferedWriter(raw, size)

    def _decref_socketios(self) -> None:  # socket.SocketIO.close() calls this
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    @property
    def usable(self) -> bool:
        """What urllib3 asks before reusing a pooled connection: open, and nothing unread (no EOF)."""
        ch = self.channel
        transport = ch.get_transport()
        return (not self._closed and self._finalizer.alive and not ch.closed and not ch.eof_received
                and not ch.recv_ready() and transport is not None and transport.is_active())

    def failure(self, wait: float = 2.0) -> str:
        """Why the channel's dial-stdio ended, in one line: its stderr (the shell's or the CLI's)."""
        ch = self.channel
        deadline = time.monotonic() + wait
        while not ch.recv_stderr_ready() and not ch.exit_status_ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        err = b""
        while ch.recv_stderr_ready():
            err += ch.recv_stderr(65536)
        lines = [line.strip() for line in err.decode(errors="replace").splitlines() if line.strip()]
        reason = lines[-1] if lines else ""
        for prefix in _SHELL_PREFIXES:
            if reason.startswith(prefix):
                reason = reason[len(prefix):]
                break
        status = ch.exit_status if ch.exit_status_ready() else None
        if not reason and status == 127:
            reason = "docker: command not found"
        if not reason:
            reason = f"dial-stdio exited with status {status}" if status is not None else "no answer"
        return reason[:300]


class _Opener:
    """Opens the channels of one client, within its Connection's channel budget."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.budget = connection.channels  # shared with its commands and uploads (ssh.MAX_CHANNELS)
        self.last: ChannelSocket | None = None

    def __call__(self, timeout: Any) -> ChannelSocket:
        name = self.connection.target.name
        if not self.budget.acquire(timeout=CHANNEL_WAIT):
            raise ChannelOpenError(f"{name}: all {MAX_CHANNELS} SSH channels of its connection stayed in use for "
                                   f"{CHANNEL_WAIT:g}s")
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self.budget.release()
        try:
            channel = self.connection.transport().open_session(timeout=connect_timeout())
            try:
                channel.exec_command(DIAL_COMMAND)
            except BaseException:
                channel.close()
                raise
        except SSHError as exc:
            release()
            raise ChannelOpenError(str(exc)) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            release()
            raise ChannelOpenError(f"{name}: cannot open an SSH channel to its Docker engine: "
                                   f"{exc or type(exc).__name__}") from exc
        except BaseException:
            release()
            raise
        sock = ChannelSocket(channel, release)
        sock.settimeout(timeout)
        self.last = sock
        return sock


class _ChannelHTTPConnection(urllib3.connection.HTTPConnection):
    def __init__(self, opener: _Opener, timeout: Any) -> None:
        super().__init__("localhost", timeout=timeout)
        self._opener = opener

    def connect(self) -> None:
        self.sock = self._opener(self.timeout)  # type: ignore[assignment]

    @property
    def is_connected(self) -> bool:
        return self.sock is not None and self.sock.usable  # type: ignore[attr-defined]


class _ChannelPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, opener: _Opener, timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self._opener = opener

    def _new_conn(self) -> _ChannelHTTPConnection:
        self.num_connections += 1
        return _ChannelHTTPConnection(self._opener, self.timeout.connect_timeout)  # type: ignore[union-attr]


class _ChannelAdapter(requests.adapters.HTTPAdapter):
    """Every request, whatever its URL, goes to the one pool of channels (made again after close(), as
    docker-py's own adapters do: a closed client still works)."""

    def __init__(self, opener: _Opener, timeout: float, maxsize: int) -> None:
        super().__init__()
        self._opener, self._timeout, self._maxsize = opener, timeout, maxsize
        self._pool: _ChannelPool | None = None
        self._pool_lock = threading.Lock()

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
                                        ) -> _ChannelPool:
        return self.get_connection(request.url, proxies)

    def get_connection(self, url: Any, proxies: Any = None) -> _ChannelPool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = _ChannelPool(self._opener, self._timeout, self._maxsize)
            return self._pool

    def request_url(self, request: Any, proxies: Any) -> str:
        return request.path_url  # no proxy applies: the path alone, as docker-py's unix adapter sends

    def close(self) -> None:
        super().close()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class _APIClient(docker.APIClient):
    """docker-py's APIClient with our adapter for its base URL, from its first request on (the API version
    is asked in __init__): docker-py takes a unix:// base URL down the same code paths as a local socket."""

    def __init__(self, adapter: _ChannelAdapter, **kwargs: Any) -> None:
        self._wb_adapter = adapter
        super().__init__(base_url="unix:///workbench-over-ssh.sock", **kwargs)
        self.mount("http+docker://", adapter)

    def get_adapter(self, url: str) -> requests.adapters.BaseAdapter:
        if url.lower().startswith("http+docker://"):
            return self._wb_adapter
        return super().get_adapter(url)


class _DockerClient(docker.DockerClient):
    def __init__(self, api: docker.APIClient) -> None:  # noqa: super-init-not-called: it would make its own
        self.api = api


def docker_client_over(connection: Connection, timeout: float = 60.0,
                       ping_timeout: float = PING_TIMEOUT) -> docker.DockerClient:
    """A docker-py client of `connection`'s host's engine, which answered (its API version asked and used).
    SSH failures raise SSHError as Connection does; a host without a working docker CLI or engine raises
    EngineUnavailable in one line naming the host and why."""
    name = connection.target.name
    connection.transport()  # unreachable, unknown host key, auth: said as Connection says it
    opener = _Opener(connection)
    adapter = _ChannelAdapter(opener, timeout, POOL_SIZE)
    try:
        api = _APIClient(adapter, version="auto", timeout=ping_timeout)
    except (docker.errors.DockerException, OSError) as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ChannelOpenError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, ChannelOpenError):
            reason = str(cause).removeprefix(f"{name}: ")
        elif "timed out" in str(exc).lower():
            reason = f"no reply within {ping_timeout:g}s"
        elif opener.last is not None:
            reason = opener.last.failure()
        else:
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        adapter.close()
        raise EngineUnavailable(f"{name}: no Docker engine answers ({reason})",
                                hint=f"check that Docker is installed and running on {name}") from None
    api.timeout = timeout
    return _DockerClient(api)
