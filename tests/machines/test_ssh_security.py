"""SSH security against real sshd on loopback (issue #8): a host-key algorithm change is a CHANGED key (as in
OpenSSH), known algorithms are asked for first; key files others can read are refused, passphrase keys work
through a real ssh-agent; a host that accepts TCP but never speaks SSH times out in one clear line."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import assert_one_line_error, require
from sshd_hosts import Agent, keygen, make_host

from workbench.machines.hostkeys import HostKeyStore
from workbench.machines.ssh import HostKeyChanged, SSHError, SSHTarget, fetch_host_key, open_transport
from workbench.services import Workbench


@pytest.fixture
def new_host(ssh_env, tmp_path):
    """Fresh sshd hosts (each on its own 127.0.0.x) authorising the test user key and any key passed in."""
    started = []

    def make(name: str, address: str, *extra_keys: Path):
        authorized = tmp_path / f"{name}-authorized_keys"
        authorized.write_text("".join(k.with_name(k.name + ".pub").read_text()
                                      for k in (ssh_env.user_key, *extra_keys)))
        (tmp_path / "hosts").mkdir(exist_ok=True)
        host = make_host(tmp_path / "hosts", name, address, authorized, None)
        started.append(host)
        return host
    yield make
    for host in started:
        host.stop()


def add(cli, name, host, key):
    result = cli("machines", "add", name, "--ssh", host.ssh, "--identity", str(key), "--json")
    assert result.code == 0, result.err
    return result.json()


# 1. host-key algorithms ---------------------------------------------------------------------------------

def test_host_key_algorithm_change_is_a_changed_key(cli, home, ssh_env, new_host):
    host = new_host("algo", "127.0.0.3")
    old = host.use_host_keys("ed25519")["ed25519"]
    host.start()
    assert add(cli, "algo", host, ssh_env.user_key)["fingerprint"] == old
    assert cli("machines", "trust", "algo", "--fingerprint", old).code == 0
    assert cli("machines", "stats", "algo").code == 0
    known_hosts = (home / "known_hosts").read_text()

    host.stop()
    new = host.use_host_keys("ecdsa")["ecdsa"]  # the same host, now with an ECDSA key only
    host.start()
    assert_one_line_error(cli("machines", "stats", "algo"), "HOST KEY CHANGED for algo", f"ecdsa-sha2-nistp256 {new}",
                          f"ssh-ed25519 {old}", str(home.resolve() / "known_hosts"))
    assert_one_line_error(cli("machines", "trust", "algo", "--fingerprint", new), "HOST KEY CHANGED", new, old)
    wb = Workbench()
    try:
        with pytest.raises(HostKeyChanged) as refused:
            wb.trust_machine("algo", fingerprint=new)
        assert refused.value.verdict.known_fingerprint == old
        assert wb.add_machine("algo2", ssh=host.ssh, identity=str(ssh_env.user_key)).state == "host key changed"
    finally:
        wb.close()
    assert (home / "known_hosts").read_text() == known_hosts  # nothing replaced, nothing added


@pytest.mark.parametrize("known_type", ["ecdsa", "rsa"])
def test_a_host_with_several_keys_presents_the_known_one(cli, home, ssh_env, new_host, known_type):
    host = new_host(f"two-{known_type}", "127.0.0.4")
    fingerprints = host.use_host_keys("ed25519", known_type)
    host.start()
    # unknown host: our default preference gets the ed25519 key
    assert add(cli, "two", host, ssh_env.user_key)["fingerprint"] == fingerprints["ed25519"]
    (home / "known_hosts").write_text(host.known_hosts_line(known_type))  # we know only the other key
    stats = cli("machines", "stats", "two", "--json")
    assert stats.code == 0, stats.err
    trusted = cli("machines", "trust", "two", "--json")  # the trust path asks for the known key first too
    assert trusted.code == 0, trusted.err
    assert trusted.json()["already"] and trusted.json()["fingerprint"] == fingerprints[known_type]
    assert cli("machines", "add", "two-again", "--ssh", host.ssh, "--json").json()["state"] == "host key known"


# 2. key files -------------------------------------------------------------------------------------------

def test_private_key_readable_by_others_is_never_used(cli, ssh_env, tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    loose = tmp_path / "loose_key"
    shutil.copy(ssh_env.user_key, loose)
    loose.chmod(0o644)
    add(cli, "loose", ssh_env.cpu, loose)
    assert cli("machines", "trust", "loose", "--fingerprint", ssh_env.cpu.fingerprint).code == 0
    assert_one_line_error(cli("machines", "stats", "loose"), "no key was accepted", "UNPROTECTED PRIVATE KEY FILE",
                          str(loose), f"chmod 600 {loose}")
    loose.chmod(0o600)
    stats = cli("machines", "stats", "loose", "--json")
    assert stats.code == 0, stats.err


@pytest.fixture
def passphrase_key(tmp_path):
    key = tmp_path / "pp_key"
    keygen(key, passphrase="secret")
    return key


def test_passphrase_key_without_agent_is_one_clear_line(cli, ssh_env, new_host, passphrase_key, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    host = new_host("pp", "127.0.0.5", passphrase_key)
    host.start()
    add(cli, "pp", host, passphrase_key)
    assert cli("machines", "trust", "pp", "--fingerprint", host.fingerprint).code == 0
    refused = cli("machines", "stats", "pp")
    assert_one_line_error(refused, "no key was accepted", f"{passphrase_key} needs a passphrase",
                          f"ssh-add {passphrase_key}")
    assert "internal error" not in refused.err


def test_passphrase_key_in_a_real_agent_connects(cli, ssh_env, new_host, passphrase_key):
    require(shutil.which("ssh-agent") is not None and shutil.which("ssh-add") is not None,
            "ssh-agent / ssh-add are not installed")
    host = new_host("ppa", "127.0.0.6", passphrase_key)
    host.start()
    agent_dir = Path(tempfile.mkdtemp(prefix="wbagent", dir="/tmp"))  # a unix socket path must stay short
    agent = Agent(agent_dir / "sock")
    try:
        agent.add(passphrase_key, "secret")
        env = {"SSH_AUTH_SOCK": str(agent.socket)}
        # the identity file is the encrypted key itself: it is skipped, the agent's copy is used
        assert cli("machines", "add", "ppa", "--ssh", host.ssh, "--identity", str(passphrase_key), env=env).code == 0
        assert cli("machines", "trust", "ppa", "--fingerprint", host.fingerprint, env=env).code == 0
        stats = cli("machines", "stats", "ppa", "--json", env=env)
        assert stats.code == 0, stats.err
        assert stats.json()["cpus"] >= 1
    finally:
        agent.stop()
        shutil.rmtree(agent_dir, ignore_errors=True)


# 3. a host that accepts TCP but never speaks SSH ---------------------------------------------------------

@pytest.fixture
def silent_port():
    """A TCP server on 127.0.0.1 that accepts connections and never writes a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except (TimeoutError, OSError):
                continue
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def test_silent_jump_host_times_out_in_one_clear_line(silent_port, tmp_path):
    store = HostKeyStore(tmp_path / "known_hosts", system=())
    jump = SSHTarget("behind-jump", "127.0.0.1", silent_port)
    target = SSHTarget("behind", "127.0.0.1", 1, jump=jump)
    for attempt in (open_transport, fetch_host_key):
        started = time.monotonic()
        with pytest.raises(SSHError) as failed:
            attempt(target, store, timeout=1)
        assert time.monotonic() - started < 5
        message = str(failed.value)
        assert message.startswith("behind: jump host behind-jump did not answer the SSH handshake within 1s "
                                  "(timed out)"), message
        assert "\n" not in message and "No existing session" not in message


def test_silent_target_times_out_in_one_clear_line(silent_port, tmp_path):
    store = HostKeyStore(tmp_path / "known_hosts", system=())
    target = SSHTarget("quiet", "127.0.0.1", silent_port)
    for attempt in (open_transport, fetch_host_key):
        with pytest.raises(SSHError) as failed:
            attempt(target, store, timeout=0.5)
        assert str(failed.value) == (f"quiet: 127.0.0.1:{silent_port} did not answer the SSH handshake within 0.5s "
                                     "(timed out)")


def test_a_malformed_known_hosts_line_never_hides_a_changed_key(tmp_path):
    """One bad line (a stray byte, bad base64) is skipped, not the whole file: a changed key stays changed."""
    import subprocess

    import paramiko

    from workbench.machines.hostkeys import HostKeyStore

    for name in ("trusted", "other"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    kind, blob = (tmp_path / "trusted.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_bytes(b"stray \xff byte line\n[127.0.0.1]:2299 ssh-ed25519 !!!not-base64\n"
                      + f"[127.0.0.1]:2299 {kind} {blob}\n".encode())
    store = HostKeyStore(known, system=())
    assert store.check("127.0.0.1", 2299, paramiko.PKey.from_path(tmp_path / "trusted")).state == "known"
    assert store.check("127.0.0.1", 2299, paramiko.PKey.from_path(tmp_path / "other")).state == "changed"
