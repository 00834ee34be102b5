"""Issue 22, item 1, over SSH: a bar redrawn 100,000 times, with multi-byte characters, by a program the
process executor runs on an SSH host (real sshd on loopback; its files are read over SFTP a MiB at a time)
is stored as its last state once, with every line around it whole."""

from __future__ import annotations

from helpers import PROGRESS_BARS, assert_progress_bars_stored

SPEC = r"""
[project]
name = "fast-bar"
[experiments.bar]
image = "python:3.11-slim"  # (unused: the process executor runs it on the host itself)
command = ["python3", "progress_bars.py", "{n}"]
params = { n = 100000 }
"""


def test_a_bar_redrawn_100k_times_on_an_ssh_host_is_stored_once(cli, make_project, ssh_env, home, tmp_path):
    host = ssh_env.cpu
    added = cli("machines", "add", "cpu1", "--ssh", host.ssh, "--identity", str(ssh_env.user_key),
                "--dir", str(tmp_path / "host dir"))
    assert added.code == 0, added.err
    trusted = cli("machines", "trust", "cpu1", "--fingerprint", host.fingerprint)
    assert trusted.code == 0, trusted.err
    root = make_project(SPEC, files={"progress_bars.py": PROGRESS_BARS.read_text()})
    done = cli("run", str(root), "--machine", "cpu1", "--executor", "process", "--wait", "--json")
    assert done.code == 0, done.err
    run = done.json()
    assert run["status"] == "succeeded" and run["machine"] == "cpu1", run
    rate = assert_progress_bars_stored((home / "runs" / run["id"] / "logs.txt").read_bytes(), 100_000)
    assert rate >= 10_000
