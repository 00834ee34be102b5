"""Remote runs in the app (issue 10), at 80×24 with the keyboard: the Runs screen shows the machine and a
run whose host does not answer ("running?"); the run detail says where the files live and, while it lasts,
since when the host is unreachable; the launch form offers the machines; the Machines screen and a machine's
detail say which run holds which GPU. The unreachable host is real: a machine whose address refuses
connections."""

from __future__ import annotations

import os
import signal
import threading

from textual.widgets import DataTable, Select, Static

from fixture_db import NOW
from helpers import background_pids
from test_run_screens import add_run, open_runs, row_keys, settle, until
from workbench.machines.gpus import GpuInventory
from workbench.machines.local import LocalSample
from workbench.machines.nvidia_smi import GpuReading
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.launch_form import LaunchForm
from workbench.tui.screens.machine_detail import MachineDetailScreen
from workbench.services.answers import MachineEntry
from workbench.tui.screens.machines import host_block
from workbench.tui.screens.run_detail import RunDetailScreen

SIZE = (80, 24)
SINCE = "host unreachable since 2026-11-28 05:00:00"
REMOTE_GPU = "GPU-cccebab5"


def remote_run(wb, run_id: str = "remote01", *, unreachable: bool = True, created: float = NOW) -> None:
    """A run on the SSH machine gpu-a (registered; nothing listens at its address), holding one of its GPUs."""
    if "gpu-a" not in [m.name for m in wb.list_machines()]:
        wb.add_machine("gpu-a", ssh="root@127.0.0.1:1")
    wb._services.store.insert_run({
        "id": run_id, "project": "p", "project_path": "/p", "experiment": "e", "status": "queued",
        "machine": "gpu-a", "executor": "docker", "created_at": created, "params": {"lr": 0.1},
        "gpu_uuids": [REMOTE_GPU],
    })
    wb._services.store.mark_running(run_id, {"container": "c0ffee", "run_dir": "/root/.workbench/runs/" + run_id,
                                   "machine": "gpu-a"}, created)
    if unreachable:
        wb._services.store.update_run(run_id, status_reason=SINCE)


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def shown_columns(table) -> dict[str, int]:
    return {key.value: column.width for key, column in table.columns.items()}


# the Runs screen ----------------------------------------------------------------------------------
def test_an_unreachable_hosts_run_stays_running_marked_by_the_reconciler(wb):
    remote_run(wb, unreachable=False)
    try:
        wb.reconcile(wait=15)
        run = wb._services.store.get_run("remote01")
        assert run["status"] == "running"
        assert run["status_reason"].startswith("host unreachable since")
        assert "unreachable" in [e["kind"] for e in wb._services.store.events("remote01")]
    finally:  # the follower the reconciler started waits for a host that never answers: ended here
        for pid in background_pids(wb._services.dirs.data):
            os.kill(pid, signal.SIGTERM)


async def test_runs_screen_shows_the_machine_and_the_unreachable_host_at_80_columns(seeded):
    wb = seeded
    remote_run(wb, created=NOW + 60)
    app = WorkbenchApp(wb, clock=lambda: NOW + 120)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        await until(app, pilot, lambda: "remote01" in row_keys(app))
        row = [str(c) for c in table.get_row("remote01")]
        assert "gpu-a" in row and "running?" in row, row
        assert "local" in [str(c) for c in table.get_row("r0000005")]
        widths = shown_columns(table)
        assert widths["machine"] >= len("machine") and widths["status"] >= len("running?")
        assert widths["started"] == 0  # the start time gives way; the duration stays
        assert table.max_scroll_x == 0  # nothing is pushed off to the right
        assert "gpu-a unreachable" in text_of(app, "#runs-status")
        assert wb._services.store.get_run("remote01")["status"] == "running"  # the record says running

        await pilot.press("p")  # the first project alone: its runs are all local
        await until(app, pilot, lambda: "remote01" not in row_keys(app) and bool(row_keys(app)))
        assert shown_columns(table)["machine"] == 0  # "local" on every row says nothing: it gives way first
        assert "unreachable" not in text_of(app, "#runs-status")


async def test_a_full_page_with_a_remote_run_still_fits_80_columns(wb):
    for i in range(150):  # a page of 100 rows: the vertical scrollbar takes its two columns
        add_run(wb, f"l{i:07d}", created=NOW - 1000 + i, params={"lr": 0.0167, "epochs": 15})
    remote_run(wb, created=NOW)
    app = WorkbenchApp(wb, clock=lambda: NOW + 60)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        await until(app, pilot, lambda: table.row_count == 100 and table.show_vertical_scrollbar)
        await settle(app, pilot)
        assert shown_columns(table)["machine"] >= len("machine")
        assert table.max_scroll_x == 0
        assert shown_columns(table)["project/experiment"] >= 10
        assert shown_columns(table)["params"] >= len("lr=0.0167 …")  # the first param whole, never a bare `…`
        assert shown_columns(table)["metrics"] >= len("metrics")  # no run has metrics: its label whole


# the run detail -----------------------------------------------------------------------------------
async def test_run_detail_says_where_the_files_live_and_that_the_host_is_unreachable(wb):
    remote_run(wb)
    add_run(wb, "local01", created=NOW - 60)
    app = WorkbenchApp(wb, clock=lambda: NOW + 90)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        await until(app, pilot, lambda: row_keys(app)[:1] == ["remote01"])
        await pilot.press("enter")
        await until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run is not None)
        detail = app.screen
        title, where = text_of(app, "#detail-title"), detail.query_one("#detail-where", Static)
        alert = detail.query_one("#detail-unreachable", Static)
        assert "running?" in title and "on gpu-a" in title
        assert where.display and str(where.render()) == "files on gpu-a:/root/.workbench/runs/remote01"
        assert alert.display and SINCE in str(alert.render())
        assert alert.region.height == 1 and where.region.height == 1  # one row each at 80 columns
        assert "files on   gpu-a:/root/.workbench/runs/remote01" in text_of(app, "#overview-text")

        # the host answered again and the run had ended meanwhile: the warning goes with the unreachable host
        wb._services.store.update_run("remote01", status="succeeded", status_reason=None, finished_at=NOW + 30, exit_code=0)
        await until(app, pilot, lambda: not alert.display)
        assert "succeeded" in text_of(app, "#detail-title") and where.display

        await pilot.press("escape")
        await until(app, pilot, lambda: app.screen.query_one("#runs-table", DataTable).cursor_row == 0)
        await pilot.press("down", "enter")  # a local run: neither line
        await until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run is not None
                    and app.screen.run.id == "local01")
        assert not app.screen.query_one("#detail-where", Static).display
        assert not app.screen.query_one("#detail-unreachable", Static).display


# the launch form ----------------------------------------------------------------------------------
async def test_the_launch_form_offers_the_machines(wb):
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        form = LaunchForm("p", "train", {"lr": 0.01}, ["local", "gpu-a"])
        result: list = []
        app.push_screen(form, result.append)
        await pilot.pause()
        machine = form.query_one("#machine", Select)
        assert machine.value == "local"
        machine.focus()
        await pilot.press("enter", "down", "down", "enter")  # open the list, past auto, choose gpu-a
        await pilot.pause()
        assert machine.value == "gpu-a"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert result == [{"overrides": [], "executor": None, "machine": "gpu-a"}]


async def test_launching_from_projects_offers_the_registered_machines_and_passes_the_choice(wb, make_project,
                                                                                             monkeypatch):
    project = make_project('[project]\nname = "demo"\n[experiments.train]\nimage = "busybox:latest"\n'
                           'command = ["echo"]\nparams = { lr = 0.1 }\n')
    wb.add_project(str(project))
    wb.add_machine("gpu-a", ssh="root@127.0.0.1:1")
    wb.add_machine("gpu-b", ssh="root@127.0.0.1:1")
    launched: list = []
    loaded_in: list = []
    list_machines = wb.list_machines

    def recording_list_machines():
        loaded_in.append(threading.current_thread() is threading.main_thread())
        return list_machines()

    def fake_launch(path, experiment=None, overrides=None, *, machine="local", executor=None):
        launched.append((path, experiment, overrides, machine, executor))
        add_run(wb, "launch01", status="running")
        return wb.show_record("launch01")

    monkeypatch.setattr(wb, "list_machines", recording_list_machines)
    monkeypatch.setattr(wb, "launch", fake_launch)
    monkeypatch.setattr(wb, "follow_in_background", lambda run_id: None)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await until(app, pilot, lambda: app.screen.query_one("#projects-table", DataTable).row_count == 1)
        app.screen.query_one("#projects-table", DataTable).focus()
        await pilot.press("l")
        await until(app, pilot, lambda: isinstance(app.screen, LaunchForm))
        machine = app.screen.query_one("#machine", Select)
        assert [value for _, value in machine._options if value != Select.BLANK] == ["local", "auto", "gpu-a",
                                                                                     "gpu-b"]
        assert machine.value == "local"
        machine.focus()
        await pilot.press("enter", "down", "down", "down", "enter", "ctrl+s")
        await until(app, pilot, lambda: bool(launched) and isinstance(app.screen, RunDetailScreen))
        assert launched == [(str(project), "train", [], "gpu-b", None)]
        assert loaded_in and not any(loaded_in)  # the machine list is read in a worker thread


# the Machines screen ------------------------------------------------------------------------------
def test_host_block_says_which_run_holds_a_gpu(wb):
    gpu = GpuReading(index=0, uuid=REMOTE_GPU, name="NVIDIA H100 80GB HBM3", memory_total=80 << 30,
                     memory_used=1 << 30, utilization=3.0)
    live = {"state": "connected", "gpus": [gpu], "util_history": {0: [1.0, 3.0]}, "processes": {}}
    machine = MachineEntry("gpu-a", "ssh", "root@10.0.0.7:22", None)
    assert "held by run remote01" in host_block(machine, live, {("gpu-a", REMOTE_GPU): "remote01"})
    assert "held by" not in host_block(machine, live, {("gpu-b", REMOTE_GPU): "remote01"})
    assert f"{REMOTE_GPU} [b]held by run remote01" in host_block(machine, None, {("gpu-a", REMOTE_GPU): "remote01"})
    remote_run(wb)
    assert wb.gpu_holders() == {("gpu-a", REMOTE_GPU): "remote01"}


async def test_machines_screen_and_detail_say_which_run_holds_each_gpu(wb, monkeypatch):
    local_gpu = GpuReading(index=0, uuid="GPU-11aa22bb", name="NVIDIA RTX 4090", memory_total=24 << 30,
                           memory_used=2 << 30, utilization=50.0)
    sample = LocalSample(cpus=16, load=(1.5, 1.2, 0.9), memory_used=12 << 30, memory_total=64 << 30,
                         disk_used=400 << 30, disk_total=1000 << 30, gpus=GpuInventory([local_gpu]))
    monkeypatch.setattr(wb, "local_machine", lambda: sample)
    monkeypatch.setattr(wb._services, "local_machine", lambda: sample)  # what `machine_stats("local")` samples
    monkeypatch.setattr(wb, "reconcile_if_stale", lambda *a, **k: None)  # the fixture's runs stay as written
    remote_run(wb)
    add_run(wb, "local01", status="running")
    assert wb._services.store.place_run("local01", "local", ["GPU-11aa22bb"], {})  # reserved, as a launch does
    asked_in: list = []
    gpu_holders = wb.gpu_holders

    def recording_gpu_holders():
        asked_in.append(threading.current_thread() is threading.main_thread())
        return gpu_holders()

    monkeypatch.setattr(wb, "gpu_holders", recording_gpu_holders)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await until(app, pilot, lambda: "held by run local01" in text_of(app, "#local"))
        await until(app, pilot, lambda: "gpu-a" in app.screen.cards
                    and f"{REMOTE_GPU} held by run remote01" in str(app.screen.cards["gpu-a"].render()))
        await pilot.press("enter")
        await until(app, pilot, lambda: isinstance(app.screen, MachineDetailScreen)
                    and "held by run remote01" in text_of(app, "#machine-detail"))
        detail = text_of(app, "#machine-detail")
        assert REMOTE_GPU in detail and "no GPUs" not in detail  # the host did not answer: nothing said of GPUs
        assert asked_in and not any(asked_in)  # asked in the screens' workers, never on the event loop
