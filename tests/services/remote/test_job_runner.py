"""The job runner (issue 11) against the remote host env: placement on the machine with free GPUs, the queue
and its detached dispatcher (runs start with no CLI alive), GPU reservations that never double-book, and
the bad inputs. The fleet host's stand-in nvidia-smi reports as many H100s as its gpu-count file says; a GPU
is made busy by listing a foreign process on it in gpu-apps.csv. Pinning is observed in the containers
(NVIDIA_VISIBLE_DEVICES, set by the host engine's NVIDIA hook stand-in from the device request)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import assert_one_line_error, dispatcher_pids, wait_for
from remote_hosts import register
from workbench.store.leases import lease_name

pytestmark = pytest.mark.docker

SPEC = """
[project]
name = "fleet"
[experiments.train]
image = "busybox:latest"
command = ["sh", "-c", "echo visible=$NVIDIA_VISIBLE_DEVICES; sleep {pause}"]
params = { pause = 2.0 }
gpus = 1
EXTRA
"""


def spec(extra: str) -> str:
    return SPEC.replace("EXTRA", extra)


def _fleet(remote_env, gpus: int, busy: list[int] = ()) -> list[str]:
    """The gpu host with `gpus` GPUs, those at `busy` in use by a foreign process; their uuids."""
    (remote_env.gpu.dir / "gpu-count").write_text(str(gpus))
    first = remote_env.gpu_uuids[0]
    uuids = [first if i == 0 else f"{first[:-2]}{i:02d}" for i in range(gpus)]
    apps = "".join(f"{uuids[i]}, {4000 + i}, python3, 30000\n" for i in busy)
    (remote_env.gpu.dir / "gpu-apps.csv").write_text(apps)
    return uuids


@pytest.fixture
def fleet(remote_env):
    yield remote_env
    for name in ("gpu-count", "gpu-apps.csv"):
        (remote_env.gpu.dir / name).unlink(missing_ok=True)


def _show(cli, run_id: str) -> dict:
    shown = cli("runs", "show", run_id, "--json")
    assert shown.code == 0, shown.err
    return shown.json()


def _visible(cli, run_id: str) -> str:
    lines = [l for l in cli("runs", "logs", run_id).out.splitlines() if l.startswith("visible=")]
    assert lines, cli("runs", "logs", run_id).out
    return lines[0].removeprefix("visible=")


def _final(cli, run_id: str, timeout: float = 90) -> dict:
    return wait_for(lambda: (s := _show(cli, run_id))["status"] not in ("queued", "running") and s,
                    timeout=timeout, interval=0.3)


def test_three_runs_on_two_free_gpus_two_start_and_the_third_starts_alone(cli, make_project, fleet, tmp_path):
    uuids = _fleet(fleet, 3, busy=[1])  # 3 GPUs, one used by someone else: 2 free
    register(cli, "gpu-a", fleet.gpu, fleet.user_key, extra=("--dir", str(tmp_path / "host"), "--hourly-cost", "3.0"))
    root = make_project(spec("").replace("pause = 2.0", "pause = 6.0"))  # the first two outlast 3 launches
    ids, placed = [], []
    for _ in range(3):
        started = cli("run", str(root), "--machine", "auto", "--json")
        assert started.code == 0, started.err
        ids.append(started.json()["id"])
        placed.append(started.json())
    assert [p["status"] for p in placed[:2]] == ["running", "running"]
    assert placed[2]["status"] == "queued", [_show(cli, i)["placement"] for i in ids] + [_show(cli, i)["gpu_uuids"] for i in ids]
    assert placed[2]["status_reason"] == "waiting for 1 free GPU on gpu-a", placed[2]
    first_two = [_show(cli, i) for i in ids[:2]]
    assert {s["machine"] for s in first_two} == {"gpu-a"}
    assert first_two[0]["placement"]["reason"] == "gpu-a: 2 of 3 GPUs free, $3.00/h"
    assert first_two[1]["placement"]["reason"] == "gpu-a: 1 of 3 GPUs free, $3.00/h"
    held = [s["gpu_uuids"][0] for s in first_two]
    assert sorted(held) == sorted([uuids[0], uuids[2]])  # never the busy one, never twice
    queue = cli("queue", "--json")
    assert queue.code == 0 and [r["id"] for r in queue.json()] == [ids[2]]
    # no CLI stays alive: the followers end the first two, the detached dispatcher starts the third
    finals = [_final(cli, i) for i in ids]
    assert [f["status"] for f in finals] == ["succeeded"] * 3, finals
    assert [_visible(cli, i) for i in ids[:2]] == held  # pinned by uuid, seen in the container
    third = _visible(cli, ids[2])
    assert third in held and finals[2]["gpu_uuids"] == [third]
    kinds = [e["kind"] for e in finals[2]["events"]]
    assert kinds.index("queued") < kinds.index("placed") < kinds.index("started")
    assert finals[2]["cost"] == pytest.approx(3.0 * finals[2]["duration"] / 3600 / 3, rel=0.05)
    assert cli("queue").out.strip() == "the queue is empty"


def test_a_cpu_run_stays_on_this_workstation_on_a_cost_tie(cli, make_project, fleet, tmp_path):
    """Issue 22 item 11: gpu-a idle and free of charge like this workstation (its name sorts first, and it
    took such runs before): a CPU run placed by auto stays here, and its placement says why."""
    register(cli, "gpu-a", fleet.gpu, fleet.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(spec("").replace("gpus = 1", "gpus = 0").replace("pause = 2.0", "pause = 0.1"))
    started = cli("run", str(root), "--machine", "auto", "--wait", "--json")
    assert started.code == 0, started.err
    shown = _show(cli, started.json()["id"])
    assert shown["machine"] == "local", shown["placement"]
    assert shown["placement"]["reason"].endswith("; CPU run: this workstation preferred on a tie"), shown["placement"]


def test_priority_then_first_come_and_cancel_of_a_queued_run(cli, make_project, fleet, tmp_path):
    uuids = _fleet(fleet, 1, busy=[0])  # the only GPU is busy: everything queues
    register(cli, "gpu-a", fleet.gpu, fleet.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(spec('machines = ["gpu-a"]').replace("pause = 2.0", "pause = 0.2"))
    low = cli("run", str(root), "--json").json()["id"]
    high = cli("run", str(root), "--priority", "5", "--json").json()["id"]
    gone = cli("run", str(root), "--json").json()["id"]
    listed = cli("queue", "--json").json()
    assert [r["id"] for r in listed] == [high, low, gone]
    assert all(r["status_reason"] == "waiting for 1 free GPU on gpu-a" for r in listed)
    cancelled = cli("runs", "cancel", gone)
    assert cancelled.code == 0, cancelled.err
    assert _show(cli, gone)["status"] == "cancelled"
    (fleet.gpu.dir / "gpu-apps.csv").write_text("")  # the foreign process ends
    order = [(_final(cli, high)["started_at"]), (_final(cli, low)["started_at"])]
    assert order[0] < order[1]  # the higher priority went first, on the one GPU
    assert _visible(cli, high) == _visible(cli, low) == uuids[0]
    assert _show(cli, gone)["status"] == "cancelled" and not _show(cli, gone).get("started_at")


def test_two_dispatchers_never_double_book(cli, make_project, fleet, tmp_path, home):
    _fleet(fleet, 2, busy=[0, 1])
    register(cli, "gpu-a", fleet.gpu, fleet.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(spec('machine = "auto"').replace("pause = 2.0", "pause = 1.5"))
    ids = [cli("run", str(root), "--json").json()["id"] for _ in range(4)]
    (fleet.gpu.dir / "gpu-apps.csv").write_text("")
    # besides the one the CLI started, two more dispatchers at once (each also dispatching placements itself)
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    extra = [subprocess.Popen([sys.executable, "-m", "workbench", "_dispatch"], env=env) for _ in range(2)]
    finals = [_final(cli, i) for i in ids]
    for process in extra:
        process.wait(timeout=60)
    assert [f["status"] for f in finals] == ["succeeded"] * 4, finals
    spans = sorted((f["started_at"], f["finished_at"], f["gpu_uuids"][0]) for f in finals)
    for i, (start, _, gpu) in enumerate(spans):  # at any start, each GPU held by at most one running run
        overlapping = [g for s, e, g in spans[:i] if e > start]
        assert gpu not in overlapping and len(overlapping) < 2, spans


def test_a_dispatcher_killed_after_placing_loses_no_run(cli, make_project, fleet, tmp_path, home):
    """kill -9 between taking a run off the queue and starting it: its launch lease expires, the next
    reconcile puts it back in the queue (its GPU released), and it runs once."""
    from workbench.services import Workbench

    _fleet(fleet, 1)
    register(cli, "gpu-a", fleet.gpu, fleet.user_key, extra=("--dir", str(tmp_path / "host")))
    (fleet.gpu.dir / "gpu-apps.csv").write_text(f"{fleet.gpu_uuids[0]}, 4000, python3, 30000\n")
    root = make_project(spec('machines = ["gpu-a"]').replace("pause = 2.0", "pause = 0.2"))
    run_id = cli("run", str(root), "--json").json()["id"]
    for pid in dispatcher_pids(home):  # the queue's own dispatcher goes; we play one that dies mid-dispatch
        os.kill(pid, signal.SIGKILL)
    wb = Workbench()
    try:
        run = wb._services.store.get_run(run_id)
        wb._services.store.acquire_lease(lease_name(run_id), "dead-dispatcher", 0.5)  # a launcher's, as a dispatcher takes
        assert wb._services.store.place_run(run_id, "gpu-a", [fleet.gpu_uuids[0]], {"executor": "docker",
                                  "placement": {"request": run["waiting"], "machine": "gpu-a", "reason": "x"}},
                                  from_queue=True)
        assert wb._services.store.reserved_gpus("gpu-a") == {("gpu-a", fleet.gpu_uuids[0]): run_id}
    finally:
        wb.close()
    (fleet.gpu.dir / "gpu-apps.csv").write_text("")
    time.sleep(0.6)  # the dead dispatcher's launch lease expires
    assert cli("runs", "list").code == 0  # a reconcile: back in the queue, a dispatcher started
    final = _final(cli, run_id)
    assert final["status"] == "succeeded", final
    kinds = [e["kind"] for e in final["events"]]
    assert kinds.count("started") == 1 and kinds.count("queued") == 2




def test_bad_placements_are_one_clear_line(cli, make_project, fleet, tmp_path):
    _fleet(fleet, 2)
    register(cli, "gpu-a", fleet.gpu, fleet.user_key, extra=("--dir", str(tmp_path / "host")))
    too_many = make_project(spec("").replace("gpus = 1", "gpus = 3"))
    assert_one_line_error(cli("run", str(too_many), "--machine", "auto"),
                          "needs 3 GPU(s); no machine has that many", "gpu-a 2")
    assert cli("runs", "list", "--json").json() == []  # refused at once, nothing queued
    assert_one_line_error(cli("run", str(too_many), "--machine", "nowhere"), "no machine 'nowhere'")
    # every machine it may use is unreachable: queued, saying so
    down = cli("machines", "add", "down", "--ssh", "root@127.0.0.1:1", "--json")
    assert down.code == 0
    unreachable = make_project(spec('machines = ["down"]'))
    queued = cli("run", str(unreachable), "--json")
    assert queued.code == 0, queued.err
    assert queued.json()["status"] == "queued"
    assert queued.json()["status_reason"].startswith("waiting: down ") and "cannot reach" in queued.json()["status_reason"]
    assert cli("runs", "cancel", queued.json()["id"]).code == 0
    for bad, needle in (('machines = []', "expected at least one machine name"),
                        ('machine = "auto"\nmachines = ["gpu-a"]', "not both"),
                        ('machines = ["auto"]', 'use machine = "auto"')):
        project = make_project(spec(bad))
        assert_one_line_error(cli("run", str(project)), needle)
    assert json.loads(cli("queue", "--json").out) == []


def test_a_sweep_stops_at_its_budget(cli, make_project, fleet, tmp_path):
    """$3600/h is $1 a second: trials of ~1.5 s on the machine's only GPU cost ~$1.5 each; with a $4 budget
    the third would take the sweep past it, so it stops after two and says why."""
    _fleet(fleet, 1)
    register(cli, "gpu-a", fleet.gpu, fleet.user_key, extra=("--dir", str(tmp_path / "host"), "--hourly-cost", "3600"))
    root = make_project(spec('machines = ["gpu-a"]\n[experiments.train.sweep]\npause = [1.5, 1.6, 1.7, 1.8]\n'
                             'max_parallel = 1\nbudget = 4.0'))
    started = cli("sweep", str(root), "--json")
    assert started.code == 0, started.err
    sweep_id = started.json()["id"]
    done = wait_for(lambda: (s := cli("sweeps", "show", sweep_id, "--json").json())["status"] != "running" and s,
                    timeout=120, interval=0.5)
    assert done["status"] == "stopped", done
    assert done["status_reason"].startswith("budget $4.00 reached: $") and "2 queued trial(s) not started" in done["status_reason"]
    assert sorted(t["status"] for t in done["trials"]) == ["cancelled", "cancelled", "succeeded", "succeeded"]
    assert 2.5 < done["cost"] <= 4.0 + 1.0, done["cost"]
