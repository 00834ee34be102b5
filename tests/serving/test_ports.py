"""ports.py: the endpoint's port and listen address checked before anything starts, and who holds a port,
read from the kernel's socket tables here and on a real SSH host (sshd on loopback)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from helpers import require
from workbench.errors import WorkbenchError
from workbench.serving import ports


def other_address() -> str:
    """An IPv4 address of this machine that is not loopback."""
    listed = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    found = [line.split()[3].split("/")[0] for line in listed.splitlines() if " lo " not in line]
    require(bool(found), "this machine has no IPv4 address besides loopback")
    return found[0]


@pytest.fixture
def held():
    """A port listened on at a non-loopback address only: connecting to 127.0.0.1 finds nothing there."""
    address = other_address()
    sock = socket.socket()
    sock.bind((address, 0))
    sock.listen()
    port = sock.getsockname()[1]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    yield address, port
    sock.close()


@pytest.mark.parametrize("port", [0, -1, 65536, 70000, True, "8080"])
def test_ports_outside_1_to_65535_are_refused(port):
    with pytest.raises(WorkbenchError, match="is not a TCP port"):
        ports.check_port(port)


def test_ports_and_addresses_that_are_fine():
    for port in (1, 8080, 65535):
        ports.check_port(port)
    for bind in ("0.0.0.0", "127.0.0.1", "::", "::1", "192.0.2.7"):
        ports.check_bind(bind)


@pytest.mark.parametrize("bind", ["localhost", "", "256.1.1.1", "127.0.0.1:80", "every"])
def test_a_listen_address_must_be_an_ip_address(bind):
    with pytest.raises(WorkbenchError, match="is not an IP address"):
        ports.check_bind(bind)


def test_a_port_held_on_another_address_is_seen_here(held):
    address, port = held
    assert ports.holder_here("0.0.0.0", port) == address  # every address includes it
    assert ports.holder_here(address, port) == address
    assert ports.holder_here("127.0.0.1", port) is None   # listening on loopback alone would work
    with socket.socket(socket.AF_INET6) as wildcard:      # [::] takes IPv4 too: it holds every address
        wildcard.bind(("::", 0))
        wildcard.listen()
        other = wildcard.getsockname()[1]
        assert ports.holder_here("127.0.0.1", other) == "::"


def test_the_tables_are_read_by_address_in_both_families():
    table4 = ("  sl  local_address rem_address   st tx_queue rx_queue\n"
              "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n"     # 127.0.0.1:8080 listening
              "   1: 0200000A:1F91 0300000A:D431 01 00000000:00000000\n")    # 10.0.0.2:8081, a connection
    table6 = ("  sl  local_address                         remote_address                        st\n"
              "   0: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A\n"  # ::1:8082
              "   1: 0000000000000000FFFF00000200000A:1F93 00000000000000000000000000000000:0000 0A\n")  # mapped
    assert ports.listeners(table4) == [("127.0.0.1", 8080)]
    assert ports.listeners(table6) == [("::1", 8082), ("10.0.0.2", 8083)]
    assert ports.holder([table4, table6], "0.0.0.0", 8081) is None  # a connection, not a listener
    assert ports.holder([table4, table6], "10.0.0.2", 8083) == "10.0.0.2"
    assert ports.holder([table4, table6], "127.0.0.1", 8082) is None


def test_a_port_held_on_an_ssh_host_is_seen_through_its_connection(held, tmp_path):
    require(Path("/usr/sbin/sshd").exists(), "openssh-server (sshd) is not installed")
    from sshd_hosts import trusted_loopback_host

    address, port = held
    host, connection = trusted_loopback_host(tmp_path, "ports")  # sshd here: it sees this machine's sockets
    try:
        assert ports.holder_on_host(connection, "0.0.0.0", port) == address
        assert ports.holder_on_host(connection, "127.0.0.1", port) is None
        assert ports.holder_on_host(connection, "0.0.0.0", host.port) == "127.0.0.1"  # its own sshd
    finally:
        connection.close()
        host.stop()
