"""The conformance rig: one backend of each kind, obtained as services obtain it (`executors.get(machine,
kind)` on a Workbench with the machine registered) and shared by the module's tests. `docker` and `process`
run on this workstation, `ssh_process` on the SSH test host (remote_env's `gpu` host, 127.0.0.3), `slurm` on
the Slurm test cluster through that host as its login node. Runs start from a snapshot of a small project
(sent to the host for the remote kinds), as services/launch.py starts them."""

from __future__ import annotations

import posixpath
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import require
from remote_hosts import cluster_up
from workbench.dirs import resolve_dirs
from workbench.execution.base import Handle, Launch
from workbench.execution.remote_snapshot import send_snapshot
from workbench.projects.snapshot import take_snapshot
from workbench.services import Workbench

# conformance name -> the executor kind services record for such a run
KINDS = {"docker": "docker", "process": "process", "ssh_process": "process", "slurm": "slurm"}
SLURM_POLL = 1  # seconds between squeue calls (the least `machines add --poll` takes): the suite waits on it
IMAGE = "busybox:latest"

# count.sh N PAUSE [TAIL]: `out I` to stdout, `err I` to stderr and metric {"step": I, "x": I}, I = 1..N, PAUSE
# seconds apart; then TAIL, if given, without a newline. With GATE=1 in its environment it waits after line
# N/2 for a folder `gate` in its output dir (Rig.open_gate), with half a line written meanwhile to stdout
# ("half " of "half a line") and to its metrics ('{"gate": ' of '{"gate": 1}').
COUNT = r"""n=$1; pause=$2; i=1
while [ $i -le $n ]; do
  echo "out $i"
  echo "err $i" >&2
  echo "{\"step\": $i, \"x\": $i}" >> "$WORKBENCH_METRICS"
  if [ "$GATE" = 1 ] && [ $i = $((n / 2)) ]; then
    printf 'half '
    printf '{"gate": ' >> "$WORKBENCH_METRICS"
    while [ ! -d "$WORKBENCH_OUTPUT/gate" ]; do sleep 0.05; done
    echo 'a line'
    echo '1}' >> "$WORKBENCH_METRICS"
  fi
  sleep $pause
  i=$((i + 1))
done
if [ -n "$3" ]; then printf '%s' "$3"; fi
"""


@dataclass
class Started:
    """A run as the tests hold it: its id and run dir (what services know of it) and the executor's handle,
    passed back as submit returned it."""
    run_id: str
    run_dir: str
    handle: Handle


@dataclass
class Rig:
    """One backend under test, with what services would hold beside it: the Workbench (its store and
    executors), the machine the backend runs on, the snapshot runs start in, and the runs it started (stopped
    and cleaned up at the end)."""
    kind: str                       # the conformance name: docker, process, ssh_process, slurm
    machine: str                    # the registered machine
    wb: Workbench
    snapshot_dir: str               # the project snapshot, on the run's machine
    image: str | None               # docker: the image id
    started: list[Started] = field(default_factory=list)
    slurm_poll = SLURM_POLL

    @property
    def executor_kind(self) -> str:
        return KINDS[self.kind]

    @property
    def executor(self) -> Any:
        return self.wb._services.executors.get(self.machine, self.executor_kind)

    def submit(self, argv: list[str], env: dict[str, str] | None = None, runtime_dir: str | None = None) -> Started:
        """Records a run as services do (the backend may note things about it there) and submits it."""
        executor = self.executor
        run_id = secrets.token_hex(4)
        self.wb._services.store.insert_run({"id": run_id, "project": "conformance", "project_path": "/conformance",
                                  "experiment": "count", "status": "running", "machine": self.machine,
                                  "executor": self.executor_kind, "created_at": time.time()})
        run_dir = executor.host.run_dir(run_id)
        launch = Launch(run_id=run_id, project="conformance", argv=argv,
                        env={"PYTHONUNBUFFERED": "1", "WORKBENCH_RUN_ID": run_id, **(env or {})},
                        snapshot_dir=self.snapshot_dir, run_dir=run_dir, image=self.image,
                        user=executor.host.user(), runtime_dir=runtime_dir)
        started = Started(run_id, run_dir, executor.submit(launch))
        self.started.append(started)
        return started

    def open_gate(self, run: Started) -> None:
        """Lets a count.sh run with GATE=1 go on past its middle line."""
        self.executor.host.make_dirs(posixpath.join(run.run_dir, "out", "gate"))

    def tear_down(self) -> None:
        executor = self.executor
        for run in self.started:
            try:
                if executor.status(run.handle).state == "running":
                    executor.cancel(run.handle)
                executor.cleanup(run.handle)
            except Exception:  # noqa: BLE001 - what is left is the test env's (torn down with it)
                pass


def _project(root: Path) -> Path:
    (root / "count.sh").write_text(COUNT)
    return root


@pytest.fixture(scope="module", params=[pytest.param(kind, marks=[pytest.mark.docker] * (kind != "process"))
                                        for kind in KINDS])
def rig(request, tmp_path_factory):
    """One backend of the kind, its data dir, machine and snapshot, for every test of the module."""
    kind = request.param
    data = tmp_path_factory.mktemp(f"wb-{kind}")
    wb = Workbench(resolve_dirs(data))
    machine, image = "local", None
    if kind == "docker":
        image = request.getfixturevalue("docker_client").images.get(IMAGE).id
    if kind in ("ssh_process", "slurm"):
        env = request.getfixturevalue("remote_env")
        host_dir = str(tmp_path_factory.mktemp(f"host-{kind}"))  # the cluster's "shared file system" for slurm
        login = {"identity": str(env.user_key), "workdir": host_dir}
        if kind == "slurm":
            require(cluster_up(), "no Slurm cluster answers (sinfo): .ci/slurm.sh starts one")
            machine = "hpc"
            wb.add_machine(machine, **login, slurm={"login": env.gpu.ssh, "poll": SLURM_POLL, "time": "00:10:00"})
        else:
            machine = "gpu-host"
            wb.add_machine(machine, env.gpu.ssh, **login)
        wb.trust_machine(machine, env.gpu.fingerprint)
    snapshot = take_snapshot(_project(tmp_path_factory.mktemp("project")), [], wb.dirs.snapshots)
    host = wb._services.executors.get(machine, KINDS[kind]).host
    where = str(snapshot.path)
    if host.remote:
        where = send_snapshot(host.connection, wb.dirs.snapshots, snapshot.hash, host.root, is_dir=host.is_dir).path
    made = Rig(kind, machine, wb, where, image)
    yield made
    made.tear_down()
    wb.close()
