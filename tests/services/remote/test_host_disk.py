"""A host's Workbench dir on a full or read-only disk: a real tmpfs of 2 MiB mounted at the machine's --dir (the
SSH test hosts are this machine), remounted read-only for the read-only case. A run that fills it ends with
"no space left on <host> under <dir>" (not just an exit code), and `workbench doctor NAME` names the path and
the system's reason (SFTP itself only says "Failure")."""

from __future__ import annotations

import subprocess

import pytest

from helpers import assert_one_line_error, require, wait_for
from remote_hosts import register

pytestmark = pytest.mark.docker

SPEC = """
[project]
name = "disk"
[experiments.fill]
image = "busybox:latest"
command = ["sh", "-c", "echo filling >&2; dd if=/dev/zero of={output}/big bs=64k{tidy}"]
"""


@pytest.fixture
def tiny(tmp_path):
    """A 2 MiB tmpfs for the host's Workbench dir, unmounted after the test."""
    small = tmp_path / "tiny"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(small)],
                             capture_output=True, text=True)
    require(mounted.returncode == 0, f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    yield small
    subprocess.run(["umount", "-l", str(small)], capture_output=True)


def _final(cli, run_id: str) -> dict:
    def ended():
        shown = cli("runs", "show", run_id, "--json").json()
        return shown["status"] not in ("queued", "running") and shown
    return wait_for(ended, timeout=120, interval=0.5)


def _run(cli, make_project, tidy: str = "") -> dict:
    root = make_project(SPEC.replace("{tidy}", tidy))
    started = cli("run", str(root), "--machine", "tiny", "--executor", "process", "--json")
    assert started.code == 0, started.err
    return _final(cli, started.json()["id"])


def test_a_run_that_fills_the_host_dir_says_where(cli, make_project, remote_env, tiny):
    register(cli, "tiny", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tiny)))
    final = _run(cli, make_project)
    assert final["status"] == "failed", final
    assert final["status_reason"].startswith(f"no space left on tiny under {tiny}"), final
    # the disk still full, the same project again (its snapshot is there already): the start says why in one line
    again = cli("run", str(make_project(SPEC.replace("{tidy}", ""), name="again")), "--machine", "tiny",
                "--executor", "process")
    assert_one_line_error(again, f"no space left on tiny under {tiny} (starting the run")
    # a run that removed what it wrote as it failed: its stderr is what says why
    (tiny / "runs" / final["id"] / "out" / "big").unlink()
    freed = _run(cli, make_project, tidy="; code=$?; rm -f {output}/big; exit $code")
    assert freed["status"] == "failed" and freed["exit_code"] == 1, freed
    assert freed["status_reason"].startswith("no space left on device on tiny (the run's stderr says so); "
                                             f"{tiny} has "), freed


def test_a_container_that_fills_the_host_dir_says_where(cli, make_project, remote_env, tiny):
    """A Docker run on the host (its second engine), its output dir bind-mounted from the tmpfs."""
    register(cli, "tiny", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tiny)))
    root = make_project(SPEC.replace("{tidy}", ""))
    started = cli("run", str(root), "--machine", "tiny", "--executor", "docker", "--json")
    assert started.code == 0, started.err
    final = _final(cli, started.json()["id"])
    assert final["status"] == "failed" and final["exit_code"] == 1, final
    assert final["status_reason"] == f"no space left on tiny under {tiny}", final


def test_doctor_names_the_path_and_why_on_a_full_or_read_only_dir(cli, remote_env, tiny):
    register(cli, "tiny", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tiny)))
    healthy = {c["check"]: c for c in cli("doctor", "tiny", "--json").json()}
    assert healthy["workbench dir"]["status"] == "ok", healthy
    subprocess.run(["dd", "if=/dev/zero", f"of={tiny}/filler", "bs=64k"], capture_output=True)
    full = {c["check"]: c for c in cli("doctor", "tiny", "--json").json()}
    assert full["workbench dir"]["status"] == "fail", full
    assert full["workbench dir"]["detail"] == f"tiny: cannot write in {tiny}/runs: No space left on device", full
    assert "workbench gc" in full["workbench dir"]["fix"]
    assert full["disk space"]["status"] == "fail" and full["disk space"]["detail"].startswith("0.0 GiB free")
    (tiny / "filler").unlink()

    register(cli, "tiny-new", remote_env.gpu, remote_env.user_key, extra=("--dir", f"{tiny}/not-yet"))
    subprocess.run(["mount", "-o", "remount,ro", str(tiny)], check=True)
    existing = {c["check"]: c for c in cli("doctor", "tiny", "--json").json()}["workbench dir"]
    assert existing["status"] == "fail" and existing["detail"] == (
        f"tiny: cannot write in {tiny}/runs: Read-only file system"), existing
    missing = {c["check"]: c for c in cli("doctor", "tiny-new", "--json").json()}["workbench dir"]
    assert missing["status"] == "fail" and missing["detail"] == (
        f"tiny-new: creating {tiny}/not-yet failed: {tiny}: Read-only file system"), missing  # was "...: Failure"
