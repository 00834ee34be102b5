"""ProxyJump for real: the target sshd lives in a network namespace only the jump host's namespace can
reach; this machine has no route to it, so only the direct-tcpip channel through the jump host works."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from helpers import assert_one_line_error, require
from sshd_hosts import SSHD, make_fakegpu, make_host, wire_jump_and_target

HOST_SIDE, JUMP_SIDE = "10.251.77.1", "10.251.77.2"      # this machine <-> jump namespace
JUMP_INNER, TARGET = "10.251.78.1", "10.251.78.2"        # jump namespace <-> target namespace


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory, ssh_env):
    require(shutil.which("ip") is not None, "iproute2 (ip) is not installed")
    tag = uuid.uuid4().hex[:6]
    jump_ns, target_ns = f"wbjump{tag}", f"wbtarget{tag}"
    a_host, a_jump, b_jump, b_target = f"wja{tag}", f"wjb{tag}", f"wtc{tag}", f"wtd{tag}"
    try:
        ip("netns", "add", jump_ns)
        ip("netns", "add", target_ns)
    except subprocess.CalledProcessError as exc:
        require(False, f"cannot create network namespaces: {exc.stderr.decode().strip()}")
    processes = []
    try:
        # This machine must never send the target's traffic anywhere: no route out for its subnet.
        ip("route", "add", "unreachable", "10.251.78.0/30")
        wire_jump_and_target(ip, jump_ns, target_ns, (a_host, a_jump, b_jump, b_target),
                             (HOST_SIDE, JUMP_SIDE, JUMP_INNER, TARGET))
        root = tmp_path_factory.mktemp("jump")
        authorized = root / "authorized_keys"
        authorized.write_text(ssh_env.user_key.with_suffix(".pub").read_text())
        # fresh namespaces: every port is free there
        jump = make_host(root, "jump", JUMP_SIDE, authorized, None, port=2222)
        target = make_host(root, "target", TARGET, authorized, str(make_fakegpu(root)), port=2222)
        for host, ns in ((jump, jump_ns), (target, target_ns)):
            host.process = subprocess.Popen(["ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f", str(host.config)],
                                            stdout=subprocess.DEVNULL, stderr=open(host.dir / "sshd.log", "ab"))
            processes.append(host.process)
        import time
        time.sleep(1.0)  # both listen inside their namespaces: no port probe from here reaches the target
        yield jump, target
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        for ns in (jump_ns, target_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", a_host], capture_output=True)
        subprocess.run(["ip", "route", "del", "unreachable", "10.251.78.0/30"], capture_output=True)


def test_target_only_reachable_through_its_jump_host(cli, ssh_env, namespaces):
    jump, target = namespaces
    direct = cli("machines", "add", "direct", "--ssh", f"root@{TARGET}:{target.port}", "--identity",
                 str(ssh_env.user_key), "--json")
    assert direct.json()["state"] == "unreachable"  # no route from here
    assert cli("machines", "add", "jumpbox", "--ssh", f"root@{JUMP_SIDE}:{jump.port}", "--identity",
               str(ssh_env.user_key)).code == 0
    assert cli("machines", "trust", "jumpbox", "--fingerprint", jump.fingerprint).code == 0
    behind = cli("machines", "add", "behind", "--ssh", f"root@{TARGET}:{target.port}", "--identity",
                 str(ssh_env.user_key), "--jump", f"root@{JUMP_SIDE}:{jump.port}", "--json")
    assert behind.code == 0, behind.err
    assert behind.json()["state"] == "host key unknown"
    assert behind.json()["fingerprint"] == target.fingerprint  # seen through the jump host
    # the jump host's own key must be trusted for the hop; it is (trusted above), so:
    assert cli("machines", "trust", "behind", "--fingerprint", target.fingerprint).code == 0
    stats = cli("machines", "stats", "behind", "--json")
    assert stats.code == 0, stats.err
    assert stats.json()["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert_one_line_error(cli("machines", "stats", "direct"), "cannot reach")
