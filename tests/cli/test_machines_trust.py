"""Issue 22, item 18: `machines trust NAME` with no terminal to confirm on prints the key type and the
fingerprint it asks the user to compare, and the command that trusts it without a terminal; that command
works. A real sshd on loopback."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from helpers import assert_one_line_error
from sshd_hosts import keygen, make_host


@pytest.fixture
def host(tmp_path):
    user_key = tmp_path / "userkey"
    keygen(user_key)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "userkey.pub").read_text())
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    sshd = make_host(tmp_path, "box", "127.0.0.1", authorized, None)
    sshd.start()
    try:
        yield sshd, user_key
    finally:
        sshd.stop()


def test_trust_without_a_terminal_prints_the_fingerprint_and_how_to_accept_it(cli, host):
    sshd, user_key = host
    assert cli("machines", "add", "box", "--ssh", sshd.ssh, "--identity", str(user_key)).code == 0
    refused = cli("machines", "trust", "box")  # stdin is a pipe: no terminal to confirm on
    assert_one_line_error(refused, "host key not trusted")
    said = refused.err
    assert f"ssh-ed25519 {sshd.fingerprint}" in said, said
    accept = re.search(r"`(workbench machines trust box --fingerprint \S+)`", said)
    assert accept and accept.group(1).endswith(sshd.fingerprint), said
    assert "workbench: error" not in said.split(accept.group(1))[0].splitlines()[-1]  # said before the error
    trusted = cli(*accept.group(1).split()[1:])
    assert trusted.code == 0, trusted.err
    assert f"trusted ssh-ed25519 {sshd.fingerprint}" in trusted.err


def test_trust_on_a_terminal_shows_the_fingerprint_and_asks(cli, tty_cli, host):
    sshd, user_key = host
    assert cli("machines", "add", "box", "--ssh", sshd.ssh, "--identity", str(user_key)).code == 0
    answered = tty_cli("machines", "trust", "box", typed="yes\n")
    assert answered.code == 0, answered.out
    assert f"presents ssh-ed25519 {sshd.fingerprint}. Trust it?" in answered.out
    assert f"box: trusted ssh-ed25519 {sshd.fingerprint}" in answered.out
