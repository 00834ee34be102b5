"""The Machines screen over real SSH hosts: live GPU blocks from the replayed H100, a CPU host, an
untrusted host shown as such, and trusting it from the screen after seeing its fingerprint."""

from __future__ import annotations

import time

from textual.widgets import Static

from workbench.services import Workbench
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.confirm import ConfirmScreen


async def wait_until(app, pilot, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.2)
        if predicate():
            return
    blocks = {w.id: str(w.render()) for w in app.screen.query(".host")}
    notes = [n.message for n in app._notifications]
    raise AssertionError(f"condition not met in time; screen {type(app.screen).__name__}: {blocks} {notes}")


def text(app, name):
    return str(app.screen.query_one(f"#host-{name}", Static).render())


async def test_fleet_view_and_trust_from_the_screen(home, ssh_env):
    wb = Workbench()
    wb.add_machine("gpubox", ssh=ssh_env.gpu.ssh, identity=str(ssh_env.user_key), hourly_cost=3.0)
    wb.trust_machine("gpubox", fingerprint=ssh_env.gpu.fingerprint)
    wb.add_machine("cpubox", ssh=ssh_env.cpu.ssh, identity=str(ssh_env.user_key))  # not trusted yet
    app = WorkbenchApp(wb)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("2")
        await wait_until(app, pilot, lambda: app.screen.query("#host-gpubox") and "GPU0" in text(app, "gpubox"))
        block = text(app, "gpubox")
        assert "connected" in block and "NVIDIA H100 80GB HBM3" in block and "$3.00/h" in block
        assert "35°C" in block and "73/700W" in block
        await wait_until(app, pilot, lambda: "host key unknown" in text(app, "cpubox"))
        while app.screen.current() != "cpubox":
            await pilot.press("j")
        await pilot.press("t")  # trust: the fingerprint is shown first
        await wait_until(app, pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert ssh_env.cpu.fingerprint in app.screen.question
        await pilot.press("y")
        await wait_until(app, pilot, lambda: app.screen.query("#host-cpubox") and
                         "CPU machine" in text(app, "cpubox"), timeout=40)
        while app.screen.current() != "gpubox":
            await pilot.press("j")
        await pilot.press("enter")  # the detail view: every field, processes, the engine's GPU runtime
        await wait_until(app, pilot, lambda: app.screen.query("#machine-detail") and
                         "fan n/a" in str(app.screen.query_one("#machine-detail").render()))
        detail = str(app.screen.query_one("#machine-detail").render())
        assert "GPU-cccebab5-6be7-2a4d-6d66-fa7a59c3aa2f" in detail and "MIG Disabled" in detail
        await pilot.press("escape")
    wb.close()
