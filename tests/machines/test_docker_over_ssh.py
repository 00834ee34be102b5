"""Docker over SSH for real: the local engine reached through a loopback sshd, each HTTP connection a session
channel running `docker system dial-stdio`. A client pings and runs busybox; DockerExecutor reads both log
streams exactly once across a restart; a follow is closed promptly; hosts without a docker CLI or without an
engine say so in one line."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from helpers import wait_for
from sshd_hosts import make_host
from workbench.errors import EngineUnavailable
from workbench.execution.backends.docker import DockerExecutor
from workbench.execution.base import BackendSettings, Handle, Machine
from workbench.execution.hosts import LocalHost
from workbench.machines.docker_ssh import docker_client_over
from workbench.machines.hostkeys import HostKeyStore
from workbench.machines.ssh import Connection, SSHTarget, fetch_host_key

pytestmark = pytest.mark.usefixtures("docker_client")
LABEL = f"wb-test-docker-over-ssh-{uuid.uuid4().hex[:8]}"


def connect(host, key: Path, root: Path, name: str) -> Connection:
    store = HostKeyStore(root / f"known_hosts-{name}", system=())
    target = SSHTarget(name, host.address, host.port, "root", [str(key)])
    store.trust(host.address, host.port, fetch_host_key(target, store))
    return Connection(target, store)


@pytest.fixture(scope="module")
def conn(ssh_env, tmp_path_factory):
    connection = connect(ssh_env.gpu, ssh_env.user_key, tmp_path_factory.mktemp("dockerssh"), "gpu-a")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def client(conn, docker_client):
    client = docker_client_over(conn)
    yield client
    for container in docker_client.containers.list(all=True, filters={"label": LABEL}):
        container.remove(force=True)
    client.close()


def sshd_descendants_running(host, needle: str) -> int:
    """Processes under this host's sshd whose command line has `needle` (its sessions' dial-stdio)."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            commands[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = 0, [host.process.pid]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found += needle in commands.get(child, "")
            todo.append(child)
    return found


def start(client, script: str):
    return client.containers.run("busybox:latest", ["sh", "-c", script], detach=True, labels={LABEL: "1"})


def records(data: bytes) -> list[tuple[str, str]]:
    """(stream, text) of each stored log line, `<time> <out|err> <text>`."""
    return [tuple(line.split(" ", 2)[1:]) for line in data.decode().splitlines()]  # type: ignore[misc]


def test_client_pings_and_runs_busybox(client, docker_client):
    assert client.ping() is True
    assert client.api.api_version == docker_client.api.api_version  # asked of the engine, not assumed
    out = client.containers.run("busybox:latest", ["sh", "-c", "echo hello; echo oops >&2"], remove=True,
                                stdout=True, stderr=True, labels={LABEL: "1"})
    assert sorted(out.split()) == [b"hello", b"oops"]
    assert client.containers.get(client.containers.run("busybox:latest", ["true"], detach=True,
                                                       labels={LABEL: "1"}).id).wait()["StatusCode"] == 0


def test_logs_of_both_streams_exactly_once_across_a_restart(client):
    # 2,000 lines on stdout and 500 on stderr, interleaved, in four bursts a little apart: the first read
    # stops mid-run, the second resumes from its offset, following until the container ends.
    script = ("b=0; while [ $b -lt 4 ]; do i=0; while [ $i -lt 500 ]; do n=$((b * 500 + i)); echo out $n; "
              "if [ $((n % 4)) -eq 3 ]; then echo err $((n / 4)) >&2; fi; i=$((i + 1)); done; "
              "b=$((b + 1)); sleep 0.5; done")
    container = start(client, script)
    executor = DockerExecutor(Machine("local", "local"), LocalHost(None), BackendSettings("test", docker_client=lambda: client))
    handle = Handle("/nonexistent", "local", container=container.id)
    first, offset = b"", ""
    reader = executor.read_logs(handle, "", follow=True)
    for chunk in reader:
        first += chunk.data
        offset = chunk.offset
        if first.count(b"\n") >= 600:
            break
    reader.close()
    container.reload()
    assert container.status == "running", "the first read must stop mid-run"
    rest = b"".join(chunk.data for chunk in executor.read_logs(handle, offset, follow=True))
    got = records(first + rest)
    assert [text for stream, text in got if stream == "out"] == [f"out {n}" for n in range(2000)]
    assert [text for stream, text in got if stream == "err"] == [f"err {n}" for n in range(500)]
    # A catch-up read of the ended container from the start gets them all once more; from the end, none.
    again = list(executor.read_logs(handle, "", follow=False))
    assert sorted(records(b"".join(c.data for c in again))) == sorted(got)
    assert list(executor.read_logs(handle, again[-1].offset, follow=False)) == []


def test_a_follow_on_a_silent_container_is_closed_promptly(client, ssh_env):
    container = start(client, "echo ready; sleep 300")
    executor = DockerExecutor(Machine("local", "local"), LocalHost(None), BackendSettings("test", docker_client=lambda: client))
    before = set(threading.enumerate())
    reader = executor.read_logs(Handle("/nonexistent", "local", container=container.id), "", follow=True)
    assert records(next(reader).data) == [("out", "ready")]
    following = sshd_descendants_running(ssh_env.gpu, "dial-stdio")
    assert following >= 2  # one channel per stream, each with its dial-stdio (and any idle pooled ones)
    pumps = [t for t in set(threading.enumerate()) - before if t.name.startswith("docker-log-")]
    assert len(pumps) == 2
    started = time.monotonic()
    reader.close()  # what ingestion does on release: the silent streams end at once
    for pump in pumps:
        pump.join(timeout=5)
    assert not any(p.is_alive() for p in pumps) and time.monotonic() - started < 2
    # Both channels are closed: their dial-stdio processes on the host end too.
    wait_for(lambda: sshd_descendants_running(ssh_env.gpu, "dial-stdio") <= following - 2, timeout=5)
    client.api.close()  # and the idle pooled ones with the client's pool; the client still works after
    wait_for(lambda: sshd_descendants_running(ssh_env.gpu, "dial-stdio") == 0, timeout=10)
    assert client.ping() is True
    container.remove(force=True)


@pytest.fixture(scope="module")
def engineless(ssh_env, tmp_path_factory):
    """Two more hosts: one whose PATH has no docker CLI, one whose DOCKER_HOST names a dead socket."""
    root = tmp_path_factory.mktemp("engineless")
    authorized = ssh_env.user_key.parent / "authorized_keys"
    hosts = {}
    for name, address, env in (("nocli", "127.0.0.3", f"PATH={root}/empty-bin"),
                               ("deadengine", "127.0.0.4", "DOCKER_HOST=unix:///nonexistent/docker.sock "
                                                           "PATH=/usr/local/bin:/usr/bin:/bin")):
        host = make_host(root, name, address, authorized, None)
        lines = [f"SetEnv {env}" if line.startswith("SetEnv ") else line
                 for line in host.config.read_text().splitlines()]
        host.config.write_text("\n".join(lines) + "\n")
        host.start()
        hosts[name] = host
    yield {name: connect(host, ssh_env.user_key, root, name) for name, host in hosts.items()}
    for host in hosts.values():
        host.stop()


@pytest.mark.parametrize("name, needles", [
    ("nocli", ("nocli: no Docker engine answers (docker: command not found)",)),
    ("deadengine", ("deadengine: no Docker engine answers (", "/nonexistent/docker.sock")),
])
def test_a_host_without_an_engine_says_so_in_one_line(engineless, name, needles):
    started = time.monotonic()
    with pytest.raises(EngineUnavailable) as raised:
        docker_client_over(engineless[name])
    message = str(raised.value)
    assert "\n" not in message and time.monotonic() - started < 5
    for needle in needles:
        assert needle in message, message
    engineless[name].close()
