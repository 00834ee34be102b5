"""The Machines screen over real SSH hosts: live GPU blocks from the replayed H100, a CPU host, an
untrusted host shown as such, and trusting it from the screen after seeing its fingerprint; the cards
following hosts added and removed elsewhere; the selection scrolled into view."""

from __future__ import annotations

import asyncio
import time

from textual.widgets import Static
from textual.worker import WorkerCancelled

from workbench.services import Workbench
from workbench.tui.app import WorkbenchApp, finish_stopping
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
    finish_stopping()
    wb.close()


# The host list changing under the screen (issue: DuplicateIds) ------------------------------------------------

def cards(app) -> list[str]:
    """The machine names on the remote cards, top to bottom (each card's first word)."""
    return [str(w.render()).split()[0] for w in app.screen.query_one("#fleet").query(".remote")]


async def settle(app, pilot) -> None:
    """The screen reads the machine list again (what its 1 s refresh does) and paints the answer."""
    app.screen.reload()
    for _ in range(20):  # an exclusive worker superseded while waiting (the refresh tick) says WorkerCancelled
        try:
            running = [w for w in app.workers if not w.is_cancelled]
            if running:
                await app.workers.wait_for_complete(running)
            break
        except WorkerCancelled:
            continue
    await pilot.pause()


def other_terminal(change) -> None:
    """Runs `change(workbench)` as another process would: its own Workbench on the same WORKBENCH_HOME."""
    wb = Workbench()
    try:
        change(wb)
    finally:
        finish_stopping()
        wb.close()


async def test_host_list_changes_elsewhere_update_the_cards_by_difference(home, ssh_env):
    def add(*names):
        def change(wb):
            for name in names:
                wb.add_machine(name, ssh=ssh_env.cpu.ssh, identity=str(ssh_env.user_key))
        return change

    def remove(*names):
        def change(wb):
            for name in names:
                wb.remove_machine(name)
        return change

    wb = Workbench()
    add("alpha")(wb)
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        assert cards(app) == ["alpha"]
        first = app.screen.query_one("#fleet").query(".remote").first()
        steps = [(add("beta", "gamma"), ["alpha", "beta", "gamma"]),  # add two
                 (remove("beta"), ["alpha", "gamma"]),  # remove one
                 (add("beta"), ["alpha", "beta", "gamma"]),  # re-add it under the same name
                 (remove("alpha", "gamma"), ["beta"]),
                 (add("a.b", "a_b", "a-b"), ["a-b", "a.b", "a_b", "beta"]),  # names that differ only in punctuation
                 (remove("beta", "a.b", "a_b", "a-b"), []),
                 (add("alpha"), ["alpha"])]
        for change, expected in steps:
            await asyncio.to_thread(other_terminal, change)
            await settle(app, pilot)
            assert cards(app) == expected
            assert app.screen.names == expected
            assert app._exception is None
        # quickly: several changes, each read by the screen before the previous one was painted
        for change in (add("beta", "gamma"), remove("beta"), add("beta"), remove("alpha")):
            await asyncio.to_thread(other_terminal, change)
            app.screen.reload()
            await pilot.pause(0)
        await settle(app, pilot)
        assert cards(app) == ["beta", "gamma"] and app._exception is None
        # and from the screen itself: remove the selected host, then add one back
        while app.screen.current() != "gamma":
            await pilot.press("j")
        await pilot.press("d")
        await wait_until(app, pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await settle(app, pilot)
        assert cards(app) == ["beta"] and app.screen.current() == "beta"
        app.screen.add_machine({"name": "alpha", "ssh": ssh_env.cpu.ssh, "identity": str(ssh_env.user_key)})
        await settle(app, pilot)
        await settle(app, pilot)
        assert cards(app) == ["alpha", "beta"] and app._exception is None
        assert first is not app.screen.query_one("#fleet").query(".remote").first()  # alpha was removed, then re-added
    finish_stopping()
    wb.close()


async def test_cards_unchanged_hosts_are_updated_in_place(home, ssh_env):
    wb = Workbench()
    wb.add_machine("alpha", ssh=ssh_env.cpu.ssh, identity=str(ssh_env.user_key))
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        alpha = app.screen.query_one("#fleet").query(".remote").first()
        await asyncio.to_thread(other_terminal, lambda other: other.add_machine(
            "beta", ssh=ssh_env.gpu.ssh, identity=str(ssh_env.user_key)))
        await settle(app, pilot)
        assert cards(app) == ["alpha", "beta"]
        assert app.screen.query_one("#fleet").query(".remote").first() is alpha  # the same widget, not remounted
    finish_stopping()
    wb.close()


# The selection follows the keys into view ---------------------------------------------------------------------

def in_view(container, card) -> bool:
    top, bottom = card.virtual_region.y, card.virtual_region.bottom
    return container.scroll_offset.y <= top and bottom <= container.scroll_offset.y + container.scrollable_content_region.height


async def test_selected_card_is_scrolled_into_view(home):
    wb = Workbench()
    names = [f"box{i}" for i in range(8)]
    for name in names:  # recorded, never reachable: port 1 on loopback refuses at once
        wb.add_machine(name, ssh="root@127.0.0.1:1")
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(app, pilot)
        assert cards(app) == names
        container = app.screen.query_one("#fleet")
        last = container.query(".remote").last()
        assert container.max_scroll_y > 0 and not in_view(container, last)  # the last card is below the fold
        for _ in names[1:]:
            await pilot.press("j")
        await pilot.pause()
        assert app.screen.current() == "box7" and last.has_class("selected")
        await pilot.pause()
        assert in_view(container, last), (container.scroll_offset, last.virtual_region)
        await pilot.press("j")  # wraps to the first card, which comes back into view
        await pilot.pause()
        first = container.query(".remote").first()
        assert app.screen.current() == "box0" and in_view(container, first)
        await pilot.press("up")  # the arrow keys move the selection too
        await pilot.pause()
        assert app.screen.current() == "box7" and in_view(container, last)
    finish_stopping()
    wb.close()
