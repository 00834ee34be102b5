"""Where the run runtime (workbench/runtime/) lives and how it gets first on a run's PYTHONPATH without taking
away the PYTHONPATH the run would have had: a copy in the data dir here (never the installed package's
folder), a copy sent once to an SSH host (readable by all, whatever the SFTP server's umask), and on an SSH
host or in a Slurm job the runtime put first at exec time, after the login's environment and a setup line."""

from __future__ import annotations

import os
import posixpath
import stat
import subprocess
import time
from pathlib import Path

import pytest

from workbench.execution import runtime
from workbench.execution.backends.slurm import batch_script
from workbench.execution.backends.ssh_process import RemoteProcessExecutor
from workbench.execution.base import BackendSettings, Launch, Machine
from workbench.execution.hosts import LocalHost, SshHost

LOGIN_PYTHONPATH = "/login/lib"


def test_a_local_run_uses_a_copy_of_the_runtime_in_the_data_dir(tmp_path):
    """snap Docker and Docker Desktop cannot bind-mount the installed package's folder: the runtime is copied
    once into <data>/lib/<key>/, readable by all, the same files."""
    host = LocalHost(tmp_path / "runs")
    where = Path(runtime.runtime_dir(host))
    assert where == tmp_path / "lib" / runtime.runtime_key()
    assert runtime.SOURCE not in where.parents and where != runtime.SOURCE
    assert {p.name: p.read_bytes() for p in where.iterdir()} == dict(runtime.runtime_files())
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in where.iterdir())
    assert runtime.runtime_dir(host) == str(where) and sorted(p.name for p in where.parent.iterdir()) == [where.name]


@pytest.fixture(scope="module")
def login_host(tmp_path_factory):
    """An sshd on 127.0.0.1 whose sessions get PYTHONPATH from the login (SetEnv) and whose SFTP server
    makes everything under umask 077; with an SshHost on it (its Workbench dir in a temp dir)."""
    from sshd_hosts import keygen, make_host
    from workbench.machines.hostkeys import HostKeyStore
    from workbench.machines.ssh import Connection, SSHTarget, fetch_host_key

    root = tmp_path_factory.mktemp("login")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    keygen(root / "userkey")
    (root / "authorized_keys").write_text((root / "userkey.pub").read_text())
    sshd = make_host(root, "loginhost", "127.0.0.1", root / "authorized_keys", None)
    config = sshd.config.read_text()
    config = config.replace("Subsystem sftp internal-sftp\n", "Subsystem sftp internal-sftp -u 077\n")
    config = config.replace("SetEnv PATH=", f"SetEnv PYTHONPATH={LOGIN_PYTHONPATH} PATH=")
    sshd.config.write_text(config)
    sshd.start()
    hostkeys = HostKeyStore(root / "known_hosts", system=())
    target = SSHTarget("loginhost", sshd.address, sshd.port, "root", [str(root / "userkey")])
    hostkeys.trust(sshd.address, sshd.port, fetch_host_key(target, hostkeys))
    connection = Connection(target, hostkeys)
    host = SshHost(connection, str(root / "wb"))
    try:
        yield host
    finally:
        host.close()
        connection.close()
        sshd.stop()


def test_the_runtime_sent_to_a_host_is_readable_by_all_whatever_the_sftp_umask(login_host):
    where = runtime.runtime_dir(login_host)
    assert stat.S_IMODE(os.stat(where).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(posixpath.join(where, n)).st_mode) == 0o600 for n, _ in runtime.runtime_files())
    assert [n for n in os.listdir(posixpath.dirname(where)) if ".tmp-" in n] == []


def _ran_on(host: SshHost, env: dict[str, str]) -> tuple[str, str]:
    """(stdout, supervisor script) of `echo $PYTHONPATH` run by the process executor on the host."""
    executor = RemoteProcessExecutor(Machine("loginhost", "ssh"), host, BackendSettings())
    run_id = os.urandom(4).hex()
    run_dir = host.run_dir(run_id)
    snapshot = posixpath.join(host.root, "snapshot")
    host.make_dirs(snapshot)
    handle = executor.submit(Launch(run_id=run_id, project="p", argv=["sh", "-c", 'echo "$PYTHONPATH"'], env=env,
                                    snapshot_dir=snapshot, run_dir=run_dir,
                                    runtime_dir=runtime.runtime_dir(host)))
    deadline = time.monotonic() + 30
    while executor.status(handle).state == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return ((host.read_small(posixpath.join(run_dir, "stdout.log")) or b"").decode(),
            (host.read_small(posixpath.join(run_dir, "supervisor.sh")) or b"").decode())


def test_on_an_ssh_host_the_login_pythonpath_comes_after_the_runtime(login_host):
    where = runtime.runtime_dir(login_host)
    out, script = _ran_on(login_host, {"API_TOKEN": "tok-3f9a1c"})
    assert out == f"{where}:{LOGIN_PYTHONPATH}\n"
    assert "tok-3f9a1c" not in script  # the values stay out of the script left on the host
    out, _ = _ran_on(login_host, {"PYTHONPATH": "/opt/mine"})  # the experiment's own replaces the login's
    assert out == f"{where}:/opt/mine\n"


@pytest.mark.parametrize(("setup", "inherited", "expected"), [
    ("export PYTHONPATH=/x", "/login/lib", "/x"),       # a setup line's PYTHONPATH keeps the runtime first
    (None, "/login/lib", "/login/lib"),                 # the job's own environment (sbatch's: the login's)
    (None, None, None),
])
def test_a_slurm_job_puts_the_runtime_first_after_its_setup_line(tmp_path, setup, inherited, expected):
    """The job script Slurm runs, run here by sh (as slurmd would, with the login's environment)."""
    run_dir, snapshot = tmp_path / "run", tmp_path / "snapshot"
    (run_dir / "out").mkdir(parents=True)
    snapshot.mkdir()
    where = str(tmp_path / "lib dir")
    script = batch_script(str(run_dir), str(snapshot), ["sh", "-c", 'echo "$PYTHONPATH"'], {"WB_PARAM_LR": "0.1"},
                          setup, where)
    (run_dir / "job.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"SLURM_JOB_ID": "7"}
    if inherited:
        env["PYTHONPATH"] = inherited
    done = subprocess.run(["sh", str(run_dir / "job.sh"), "022"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, ((run_dir / "stderr.log").read_text(), done.stderr)
    assert (run_dir / "stdout.log").read_text() == (f"{where}:{expected}\n" if expected else f"{where}\n")
