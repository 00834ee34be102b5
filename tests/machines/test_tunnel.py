"""The SSH port forwarder against a real sshd on loopback: an HTTP server on "the host" (this machine, seen
by sshd) reached through a local port, many clients at once, the SSH connection killed or silenced or the
host away for a while (the same local port works again), a port in use, and stop closing everything."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import require, wait_for
from workbench.errors import WorkbenchError
from workbench.machines.ssh import Connection
from workbench.machines.tunnel import PortInUse, Tunnel, bind_local


class Handler(BaseHTTPRequestHandler):
    """GET /anything → the path back; POST → the body back; GET /hold → waits until the server's `release`."""

    def do_GET(self):
        if self.path == "/hold":
            self.server.held.set()
            self.server.release.wait(30)
        self._answer(self.path.encode())

    def do_POST(self):
        self._answer(self.rfile.read(int(self.headers["Content-Length"])))

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    require(Path("/usr/sbin/sshd").exists(), "openssh-server (sshd) is not installed")
    from sshd_hosts import trusted_loopback_host

    host, connection = trusted_loopback_host(tmp_path_factory.mktemp("tunnel"), "tunnelhost")
    connection.close()
    yield host, connection.target, connection.hostkeys
    host.stop()


@pytest.fixture(scope="module")
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.held, server.release = threading.Event(), threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


class Serving:
    def __init__(self, tunnel: Tunnel, connection: Connection) -> None:
        self.tunnel, self.connection = tunnel, connection
        self.stop = threading.Event()
        self.thread = threading.Thread(target=tunnel.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def get(self, path: str, timeout: float = 30) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.tunnel.port, timeout=timeout)
        try:
            conn.request("GET", path)
            answer = conn.getresponse()
            assert answer.status == 200
            return answer.read().decode()
        finally:
            conn.close()


@pytest.fixture
def forward(host, web):
    """Starts a tunnel on a fresh connection of its own: forward(remote_port=web's) → Serving."""
    _, target, hostkeys = host
    started: list[Serving] = []

    def make(remote_port: int | None = None, port: int = 0) -> Serving:
        connection = Connection(target, hostkeys)
        serving = Serving(Tunnel(connection, bind_local(port), "127.0.0.1", remote_port or web.server_port),
                          connection)
        started.append(serving)
        return serving
    yield make
    for serving in started:
        serving.stop.set()
        serving.thread.join(5)
        serving.connection.close()


def session_processes(host) -> list[int]:
    """The pids of the sshd processes serving connections (the listener's descendants), by /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [host.process.pid]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def signal_sessions(host, sig: int) -> list[int]:
    """Signals the host's sshd sessions; returns the pids signalled (a closed session may exit meanwhile)."""
    signalled = []
    for pid in session_processes(host):
        try:
            os.kill(pid, sig)
            signalled.append(pid)
        except ProcessLookupError:
            pass
    assert signalled, "no sshd session to signal"
    return signalled


def test_many_clients_at_once_go_through_the_host_s_ssh_connection(forward):
    serving = forward()
    assert not serving.connection.connected
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(serving.get, [f"/page/{n}" for n in range(10)]))
    assert answers == [f"/page/{n}" for n in range(10)]
    assert serving.connection.connected  # the tunnel made the SSH connection: every page came through it
    assert serving.tunnel.state == "up"
    body = os.urandom(3 << 20)  # larger than a channel's window both ways
    conn = http.client.HTTPConnection("127.0.0.1", serving.tunnel.port, timeout=30)
    conn.request("POST", "/echo", body=body, headers={"Content-Length": str(len(body))})
    assert conn.getresponse().read() == body
    conn.close()


def test_a_killed_ssh_connection_is_made_again_on_the_same_port(forward, host):
    serving = forward()
    assert serving.get("/before") == "/before"
    first = serving.connection.transport()
    signal_sessions(host[0], signal.SIGKILL)
    wait_for(lambda: not first.is_active(), timeout=10)
    assert serving.get("/after") == "/after"
    assert serving.connection.transport() is not first and serving.tunnel.state == "up"


def test_a_silent_connection_is_dropped_and_made_again(forward, host, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SSH_TIMEOUT", "1.5")  # the channel open waits this long for the host
    serving = forward()
    assert serving.get("/before") == "/before"
    first = serving.connection.transport()
    stopped = signal_sessions(host[0], signal.SIGSTOP)  # the connection stays open but nothing answers on it
    try:
        started = time.monotonic()
        assert serving.get("/after") == "/after"
        assert time.monotonic() - started < 5  # not waiting for the liveness check (6 s) to notice
        assert not first.is_active() and serving.tunnel.state == "up"
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_the_port_stays_bound_while_the_host_is_away_and_works_when_it_is_back(forward, host):
    sshd = host[0]
    serving = forward()
    assert serving.get("/before") == "/before"
    answer: list[str] = []
    waiting = threading.Thread(target=lambda: answer.append(serving.get("/while-away")))
    try:
        signal_sessions(sshd, signal.SIGKILL)  # while the listener lives: they are its children
        sshd.stop()
        wait_for(lambda: not serving.connection.connected, timeout=10)
        waiting.start()  # accepted at once: the client waits while the tunnel tries the host again
        wait_for(lambda: serving.tunnel.state.startswith("reconnecting: "), timeout=10)
        assert "cannot reach" in serving.tunnel.state
    finally:
        sshd.start()
    waiting.join(30)
    assert answer == ["/while-away"] and serving.tunnel.state == "up"
    assert serving.get("/back") == "/back"


def test_a_port_in_use_is_refused_in_one_line_and_a_stopped_tunnel_s_port_is_free_again(forward, web):
    serving = forward()
    port = serving.tunnel.port
    assert serving.get("/x") == "/x"  # a connection that leaves the port in TIME_WAIT
    with pytest.raises(PortInUse) as refused:
        bind_local(port)
    assert isinstance(refused.value, WorkbenchError)
    assert str(refused.value) == f"127.0.0.1:{port} is already in use (choose another with --port)"
    serving.stop.set()
    serving.thread.join(5)
    again = forward(port=port)  # a restarted forwarder takes its port back at once
    assert again.tunnel.port == port and again.get("/y") == "/y"


def test_nothing_listening_on_the_host_closes_the_client_at_once(forward):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed_port = free.getsockname()[1]
    serving = forward(remote_port=closed_port)
    with socket.create_connection(("127.0.0.1", serving.tunnel.port), timeout=10) as client:
        started = time.monotonic()
        assert client.recv(10) == b""
        assert time.monotonic() - started < 5
    assert serving.tunnel.state == "up"


def test_stop_closes_the_listener_and_every_client_within_a_second(forward, web):
    serving = forward()
    web.held.clear()
    clients = [socket.create_connection(("127.0.0.1", serving.tunnel.port), timeout=5) for _ in range(4)]
    clients[0].sendall(b"GET /hold HTTP/1.0\r\n\r\n")  # one request in flight
    wait_for(web.held.is_set, timeout=10)
    started = time.monotonic()
    serving.stop.set()
    serving.thread.join(1)
    assert not serving.thread.is_alive()
    for client in clients:
        try:
            assert client.recv(10) == b""
        except ConnectionResetError:
            pass
        client.close()
    assert time.monotonic() - started < 1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", serving.tunnel.port), timeout=2)
