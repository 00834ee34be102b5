"""Issue 20, files on hosts: what Workbench writes on a host is the login user's alone (dirs 0700, files 0600,
snapshot files 0400/0500), whatever the login's umask and under a --dir made wide open, and the run's
environment never sits in a file there. The host is a real sshd on loopback whose every session (commands and
SFTP alike) runs with umask 000 (a ForceCommand wrapper), its Docker the second engine, its Slurm the test
cluster; modes are read with a real stat on the host after a launch, and the whole host dir is searched for
the secret's bytes while the run is going and after it ended."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import require, wait_for
from remote_hosts import cluster_up, make_docker_host, register
from workbench.execution.runtime import on_path_line, runtime_key

pytestmark = pytest.mark.docker

# every session of the host: a permissive login (umask 000), then what the client asked for
LOOSE_LOGIN = """#!/bin/sh
umask 000
case "$SSH_ORIGINAL_COMMAND" in
  internal-sftp) exec /usr/lib/openssh/sftp-server ;;
  "") exec sh -i ;;
  *) exec sh -c "$SSH_ORIGINAL_COMMAND" ;;
esac
"""
SECRET = "hf-s3cr3t 'quoted' \"double\" $HOME `id` \\ back\nsecond line ; end"
PLAIN = "a plain value with spaces"
# the experiment proves what it got without writing the secret anywhere: its sha256, the other value, its umask
SPEC = """
[project]
name = "host-files"
[experiments.train]
image = "busybox:latest"
command = ["sh", "run.sh"]
env = { HF_TOKEN = { from_env = "WB_TEST_SECRET" }, PLAIN = "a plain value with spaces" }
"""
RUN_SH = """#!/bin/sh
out=$WORKBENCH_OUTPUT
printf %s "$HF_TOKEN" | sha256sum > "$out/token.sha"
printf %s "$PLAIN" > "$out/plain"
umask > "$out/umask"
printf %s "${SBATCH_PARTITION:-}" > "$out/sbatch_partition"
touch "$out/started"
i=0
while [ "${WB_PARAM_WAIT:-1}" = 1 ] && [ ! -e "$out/go" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
echo done
"""
PROJECT_FILES = {"run.sh": RUN_SH, "lib/data.txt": "data\n"}


@pytest.fixture(scope="module")
def loose(remote_env):
    """An sshd on 127.0.0.7 like the gpu host (the second engine, the fake nvidia-smi, the cluster's login
    node), whose sessions run with umask 000."""
    require(Path("/usr/lib/openssh/sftp-server").exists(), "openssh's sftp-server is not installed")
    root = remote_env.root / "loose-host"
    root.mkdir()
    login = root / "login.sh"
    login.write_text(LOOSE_LOGIN)
    login.chmod(0o755)
    host = make_docker_host(root, "loose", "127.0.0.7", remote_env.root / "authorized_keys",
                            str(remote_env.root / "fakegpu" / "bin"), remote_env.docker_host)
    host.config.write_text(host.config.read_text() + f"ForceCommand {login}\n")
    host.start()
    known = root / "known_hosts"
    known.write_text(host.known_hosts_line("ed25519"))
    login_umask = subprocess.run(
        ["ssh", "-i", str(remote_env.user_key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o",
         f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", "-p", str(host.port),
         f"root@{host.address}", "umask"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert login_umask.stdout.strip() == "0000", login_umask.stderr  # the login really is permissive
    yield host
    host.stop()


@pytest.fixture
def shared(tmp_path) -> Path:
    """The machine's --dir, made before Workbench by someone else, wide open."""
    path = tmp_path / "shared dir"
    path.mkdir()
    path.chmod(0o777)
    return path


def _show(cli, run_id: str) -> dict:
    shown = cli("runs", "show", run_id, "--json")
    assert shown.code == 0, shown.err
    return shown.json()


def _run_dir(shared: Path, run_id: str) -> Path:
    return shared / "runs" / run_id


def runtime_line(run_dir: Path) -> str:
    """The one line a host's generated script exports: the runtime first on PYTHONPATH, holding no run value."""
    return on_path_line(str(run_dir.parent.parent / "lib" / runtime_key())).strip()


def expected_modes(shared: Path, path: Path, is_dir: bool) -> set[int]:
    """What an entry Workbench made under the --dir must be: the snapshot store's folders and every other dir
    0700, every other file 0600; a snapshot's objects (and the tree's hard links to them) 0400, or 0500 when
    executable; a snapshot tree's dirs 0500."""
    snapshots = shared / "snapshots"
    if path.is_relative_to(snapshots) and path not in (snapshots, snapshots / "objects") and \
            not (is_dir and path.parent == snapshots / "objects"):
        return {0o500} if is_dir else {0o400, 0o500}
    return {0o700} if is_dir else {0o600}


def check_host_dir(shared: Path, *experiment_dirs: Path) -> list[str]:
    """A real stat of every entry under the --dir (itself excepted: it is not Workbench's). The experiment's
    own files (in `experiment_dirs`) keep the login's umask: they sit in 0700 dirs. Returns what was looked at."""
    seen = []
    for dirpath, dirnames, filenames in os.walk(shared):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            seen.append(str(path.relative_to(shared)))
            if stat.S_ISLNK(info.st_mode) or path.parent in experiment_dirs:
                continue
            mode, expected = stat.S_IMODE(info.st_mode), expected_modes(shared, path, stat.S_ISDIR(info.st_mode))
            said = " or ".join(f"{m:o}" for m in expected)
            assert mode in expected, f"{path.relative_to(shared)}: {mode:o}, not {said}"
    return seen


def holding(shared: Path, value: bytes) -> list[str]:
    """Files under the --dir whose bytes contain `value`."""
    found = []
    for dirpath, _, filenames in os.walk(shared):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink() and value in path.read_bytes():
                found.append(str(path.relative_to(shared)))
    return found


def no_values_on_the_host(shared: Path) -> None:
    assert holding(shared, SECRET.encode()) == [] and holding(shared, b"hf-s3cr3t") == []
    plain = holding(shared, PLAIN.encode())
    # only the project's own workbench.toml (in the snapshot) and what the experiment wrote: no script holds it
    assert all(p.endswith("/out/plain") or p.startswith("snapshots/") for p in plain), plain


def _launch_and_check(cli, shared: Path, make_project, machine: str, *executor: str,
                      spec: str = SPEC) -> tuple[str, Path]:
    root = make_project(spec, files=PROJECT_FILES)
    (root / "run.sh").chmod(0o755)
    started = cli("run", str(root), "--machine", machine, *executor, "--json", env={"WB_TEST_SECRET": SECRET})
    assert started.code == 0, started.err
    run_id = started.json()["id"]
    out = _run_dir(shared, run_id) / "out"
    try:
        wait_for(lambda: (out / "started").exists() or _show(cli, run_id)["status"] != "running", timeout=120,
                 interval=0.2)
    finally:
        run_dir = _run_dir(shared, run_id)
        said = {p.name: p.read_text(errors="replace")[-500:] for p in run_dir.glob("*") if p.is_file()}
    assert (out / "started").exists(), (_show(cli, run_id), said)
    # while it runs: modes, and no file on the host holds the secret (nor the plain value, but in its output)
    seen = check_host_dir(shared, out)
    assert f"runs/{run_id}" in seen and any(s.startswith("snapshots/objects/") for s in seen), seen
    if executor != ("--executor", "docker"):  # its logs are the engine's
        assert {f"runs/{run_id}/stdout.log", f"runs/{run_id}/stderr.log"} <= set(seen), seen  # (removed once ingested)
    no_values_on_the_host(shared)
    (out / "go").touch()
    final = wait_for(lambda: (s := _show(cli, run_id))["status"] not in ("queued", "running") and s, timeout=120,
                     interval=0.5)
    assert final["status"] == "succeeded", final
    check_host_dir(shared, out)
    no_values_on_the_host(shared)
    # the experiment got the values exactly
    assert (out / "token.sha").read_text().split()[0] == hashlib.sha256(SECRET.encode()).hexdigest()
    assert (out / "plain").read_text() == PLAIN
    assert final["env"]["HF_TOKEN"] == "***"
    return run_id, out


def test_a_process_run_over_ssh_leaves_nothing_for_others_and_no_value_in_a_file(cli, make_project, remote_env,
                                                                                 loose, shared):
    register(cli, "loose", loose, remote_env.user_key, extra=("--dir", str(shared)))
    run_id, out = _launch_and_check(cli, shared, make_project, "loose", "--executor", "process")
    run_dir = _run_dir(shared, run_id)
    for name in ("supervisor.sh", "pid", "exit_code", "supervisor.err", "child_start"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    assert not (run_dir / "launch.env").exists()  # removed by the experiment's shell as it read it
    exports = [l.strip() for l in (run_dir / "supervisor.sh").read_text().splitlines() if "export" in l]
    assert exports == [runtime_line(run_dir)], exports  # no value of the run's: only the runtime's place
    # the experiment itself runs with the login's umask (its files are in a 0700 dir)
    assert (out / "umask").read_text().strip() == "0000"
    assert stat.S_IMODE(shared.stat().st_mode) == 0o777  # the user's own dir is left as they made it


def test_docker_on_a_host_gets_the_values_through_the_engine_and_writes_none(cli, make_project, remote_env,
                                                                            loose, shared):
    register(cli, "loose", loose, remote_env.user_key, extra=("--dir", str(shared)))
    _launch_and_check(cli, shared, make_project, "loose", "--executor", "docker")


def add_cluster(cli, remote_env, loose, shared: Path) -> None:
    require(cluster_up(), "no Slurm cluster answers (sinfo): .ci/slurm.sh starts one")
    added = cli("machines", "add", "loose-hpc", "--slurm", loose.ssh, "--identity", str(remote_env.user_key),
                "--dir", str(shared), "--poll", "2", "--json")
    assert added.code == 0, added.err
    assert cli("machines", "trust", "loose-hpc", "--fingerprint", loose.fingerprint).code == 0


def test_a_slurm_job_keeps_its_files_private_and_its_values_out_of_the_shared_dir(cli, make_project, remote_env,
                                                                                 loose, shared):
    add_cluster(cli, remote_env, loose, shared)
    # a name sbatch would read as its own option goes in the job script, not in sbatch's environment
    spec = SPEC.replace('PLAIN = "a plain value with spaces" }',
                        'PLAIN = "a plain value with spaces", SBATCH_PARTITION = "no-such-partition" }')
    run_id, out = _launch_and_check(cli, shared, make_project, "loose-hpc", spec=spec)
    assert (out / "sbatch_partition").read_text() == "no-such-partition"
    run_dir = _run_dir(shared, run_id)
    for name in ("job.sh", "job_id", "pid", "exit_code", "slurm.out"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    exports = [l.strip() for l in (run_dir / "job.sh").read_text().splitlines() if l.lstrip().startswith("export ")]
    # all else came through sbatch; beside the partition, only the runtime's place (after the login's values)
    assert exports == ["export SBATCH_PARTITION=no-such-partition", runtime_line(run_dir)], exports
    assert (out / "umask").read_text().strip() == "0000"  # the login's, passed to the job for the experiment


def test_a_sweep_as_one_job_array_gives_every_task_the_values_and_no_script_holds_them(cli, make_project,
                                                                                      remote_env, loose, shared):
    """The trials share their experiment's environment through sbatch's; each task's job.sh sets only its own
    params, run id and paths; the array script under <dir>/arrays/ is 0600 in a 0700 dir."""
    add_cluster(cli, remote_env, loose, shared)
    root = make_project(SPEC.replace('command = ["sh", "run.sh"]', 'command = ["sh", "run.sh"]\n'
                                     'params = { seed = 1, wait = 0 }')
                        + "[experiments.train.sweep]\nseed = [1, 2]\n", files=PROJECT_FILES)
    started = cli("sweep", str(root), "--machine", "loose-hpc", "--json", env={"WB_TEST_SECRET": SECRET})
    assert started.code == 0, started.err
    sweep_id = started.json()["id"]
    done = wait_for(lambda: (s := cli("sweeps", "show", sweep_id, "--json").json())["status"] != "running" and s,
                    timeout=240, interval=1)
    assert done["status"] == "done" and done["progress"] == {"succeeded": 2}, done
    outs = [_run_dir(shared, trial["id"]) / "out" for trial in done["trials"]]
    for out in outs:
        assert (out / "token.sha").read_text().split()[0] == hashlib.sha256(SECRET.encode()).hexdigest()
        assert (out / "plain").read_text() == PLAIN
    arrays = list((shared / "arrays").iterdir())
    assert len(arrays) == 1 and stat.S_IMODE(arrays[0].stat().st_mode) == 0o600
    seen = check_host_dir(shared, *outs)
    assert any(s.startswith("arrays/") for s in seen)
    no_values_on_the_host(shared)
