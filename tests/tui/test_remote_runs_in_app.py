"""Remote runs in the app (issue 10): the Runs screen shows the machine and an unreachable host; the run
detail says where the files live; the launch form offers the machines; the Machines screen says which run
holds which GPU. The unreachable host is real: a machine whose address refuses connections."""

from __future__ import annotations

from textual.widgets import DataTable, Select, Static

from fixture_db import NOW
from test_run_screens import open_runs, settle, until
from workbench.machines.nvidia_smi import GpuReading
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.launch_form import LaunchForm
from workbench.tui.screens.machines import host_block


def remote_run(wb, run_id: str = "remote01") -> None:
    wb.add_machine("gpu-a", ssh="root@127.0.0.1:1")  # nothing listens there: the host is unreachable
    wb.store.insert_run({
        "id": run_id, "project": "p", "project_path": "/p", "experiment": "e", "status": "queued",
        "machine": "gpu-a", "executor": "docker", "created_at": NOW, "params": {"lr": 0.1},
        "gpu_uuids": ["GPU-cccebab5"],
    })
    wb.store.mark_running(run_id, {"container": "c0ffee", "run_dir": "/srv/wb/runs/" + run_id,
                                   "machine": "gpu-a"}, NOW)


def test_an_unreachable_hosts_run_stays_running_marked_by_the_reconciler(wb):
    remote_run(wb)
    wb.reconcile(wait=15)
    run = wb.store.get_run("remote01")
    assert run["status"] == "running"
    assert run["status_reason"].startswith("host unreachable since")
    assert "unreachable" in [e["kind"] for e in wb.store.events("remote01")]


async def test_runs_screen_and_detail_show_the_machine_and_the_unreachable_host(wb):
    remote_run(wb)
    wb.reconcile(wait=15)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(140, 30)) as pilot:
        await open_runs(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        row = [str(c) for c in table.get_row("remote01")]
        assert "gpu-a" in row
        assert any(c.startswith("unreach") for c in row), row
        await pilot.press("enter")
        await until(app, pilot, lambda: "files on" in str(app.screen.query_one("#overview-text", Static).render()))
        text = str(app.screen.query_one("#overview-text", Static).render())
        assert "files on   gpu-a:/srv/wb/runs/remote01" in text
        header = " ".join(str(s.render()) for s in app.screen.query(Static))
        assert "host unreachable since" in header


async def test_the_launch_form_offers_the_machines(wb):
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        form = LaunchForm("p", "train", {"lr": 0.01}, ["local", "gpu-a"])
        result: list = []
        app.push_screen(form, result.append)
        await pilot.pause()
        machine = form.query_one("#machine", Select)
        assert machine.value == "local"
        machine.focus()
        await pilot.press("enter", "down", "enter")  # open the list, next machine, choose it
        await pilot.pause()
        assert machine.value == "gpu-a"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert result == [{"overrides": [], "executor": None, "machine": "gpu-a"}]


def test_a_gpu_held_by_a_run_says_which(wb):
    gpu = GpuReading(index=0, uuid="GPU-cccebab5", name="NVIDIA H100 80GB HBM3", memory_total=80 << 30,
                     memory_used=1 << 30, utilization=3.0)
    live = {"state": "connected", "gpus": [gpu], "util_history": {0: [1.0, 3.0]}, "processes": {}}
    machine = {"name": "gpu-a", "address": "root@10.0.0.7:22", "hourly_cost": None}
    assert "held by run remote01" in host_block(machine, live, {("gpu-a", "GPU-cccebab5"): "remote01"})
    assert "held by" not in host_block(machine, live, {("gpu-b", "GPU-cccebab5"): "remote01"})
    remote_run(wb)
    assert wb.gpu_holders() == {("gpu-a", "GPU-cccebab5"): "remote01"}
