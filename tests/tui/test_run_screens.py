"""Issue 9, items 5, 9, 10 and 14 on the Runs screen and the run detail, driven by Pilot at 80×24 over a
real database: a bounded log tail written in batches, an Overview that scrolls at once, cancel and delete
asked first, `key=value` filters and sorts by a param or metric."""

from __future__ import annotations

import time

import pytest
from textual.widgets import DataTable, Log, Static
from textual.worker import WorkerCancelled, WorkerFailed

from fixture_db import NOW
from workbench.errors import NotFound
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.run_detail import LOG_BATCH, MAX_LOG_LINES, RunDetailScreen
from workbench.tui.screens.runs import RunsScreen

SIZE = (80, 24)


async def settle(app, pilot, rounds: int = 2):
    for _ in range(rounds):
        try:
            await app.workers.wait_for_complete()
        except (WorkerFailed, WorkerCancelled):
            pass  # a failure reaches the app's handler; an exclusive worker may be replaced by a newer one
        await pilot.pause()


async def until(app, pilot, predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await settle(app, pilot, 1)
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


def add_run(wb, run_id: str, *, status: str = "succeeded", params=None, created: float = NOW) -> int:
    return wb._services.store.insert_run({
        "id": run_id, "project": "p", "project_path": "/p", "experiment": "e", "status": status,
        "machine": "local", "executor": "process", "created_at": created, "started_at": created,
        "finished_at": created + 5 if status not in ("queued", "running") else None, "params": params or {},
    })


def row_keys(app) -> list[str]:
    return [key.value for key in app.screen.query_one("#runs-table", DataTable).rows]


async def open_runs(app, pilot):
    await pilot.press("4")
    await settle(app, pilot)
    assert isinstance(app.screen, RunsScreen)


# item 5: the log tail -------------------------------------------------------------------------------
def write_log(path, first: int, count: int) -> str:
    """`count` lines of ~100 bytes in logs.txt's format; returns the text of the last one."""
    pad = "x" * 60
    with open(path, "a") as fh:
        fh.write("".join(f"2026-01-01T00:00:00.000000000Z out line {i:07d} {pad}\n"
                         for i in range(first, first + count)))
    return f"line {first + count - 1:07d} {pad}"


async def test_log_reads_only_a_bounded_tail_and_writes_it_in_batches(wb, monkeypatch):
    add_run(wb, "biglog01")
    path = wb.dirs.run_dir("biglog01") / "logs.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    last = write_log(path, 0, 500_000)  # ~50 MB
    assert path.stat().st_size > 48_000_000
    batches: list[int] = []
    real_write_lines = Log.write_lines

    def spy(self, lines, *args, **kwargs):
        lines = list(lines)
        batches.append(len(lines))
        return real_write_lines(self, lines, *args, **kwargs)

    monkeypatch.setattr(Log, "write_lines", spy)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        await pilot.press("L")
        drained = lambda: not getattr(detail, "_draining", False)  # noqa: E731
        await until(app, pilot, lambda: drained() and len(detail.query_one(Log).lines) > 1)
        log = detail.query_one(Log)
        assert 1 < len(log.lines) <= MAX_LOG_LINES
        assert log.lines[-1] == last  # the newest line, whole
        assert "not shown here" in log.lines[0] and "workbench runs logs biglog01" in log.lines[0]
        assert log.lines[1].startswith("line ") and int(log.lines[1].split()[1]) > 500_000 - MAX_LOG_LINES
        assert detail.log_offset == path.stat().st_size

        # 50 MB more between two refreshes: still only the tail, still in batches
        last = write_log(path, 500_000, 500_000)
        detail.reload()
        await until(app, pilot, lambda: drained() and log.lines[-1] == last)
        assert len(log.lines) <= MAX_LOG_LINES
        assert any("not shown here" in line for line in log.lines)
        assert detail.log_offset == path.stat().st_size
    assert batches and max(batches) <= LOG_BATCH, max(batches)  # never one huge write


async def test_log_tail_never_sticks_on_a_line_longer_than_the_cap(wb):
    from workbench.services.log_tail import LOG_TAIL_BYTES, read_log_tail

    add_run(wb, "longline")
    path = wb.dirs.run_dir("longline") / "logs.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("2026-01-01T00:00:00Z out first\n2026-01-01T00:00:00Z out " + "y" * (LOG_TAIL_BYTES * 2))
    chunk = read_log_tail(path, 0)
    assert chunk.lines == [] and chunk.offset == path.stat().st_size  # the unfinished giant line: passed over
    with open(path, "a") as fh:
        fh.write("y" * 10 + "\n2026-01-01T00:00:00Z out after\n")
    chunk = read_log_tail(path, chunk.offset)
    assert chunk.lines == ["after"]  # its rest skipped, the next line whole

    short = path.with_name("short.txt")  # 200,000 tiny lines: the cap on lines holds inside the byte cap
    short.write_text("".join(f"{i}\n" for i in range(200_000)))
    chunk = read_log_tail(short, 0, max_lines=100)
    assert chunk.lines == [str(i) for i in range(199_900, 200_000)] and chunk.offset == short.stat().st_size
    assert chunk.skipped_bytes == short.stat().st_size - sum(len(line) + 1 for line in chunk.lines)


# item 9: the Overview scrolls at once ------------------------------------------------------------
async def test_overview_scrolls_with_keys_without_pressing_tab(wb):
    add_run(wb, "manyrows", params={f"param_{i:02d}": i * 0.5 for i in range(40)})
    for i in range(20):
        wb._services.store.add_event("manyrows", "note", f"event number {i}")
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        detail = app.screen
        scroll = detail.query_one("#overview-scroll")
        assert app.focused is scroll
        assert scroll.max_scroll_y > 20  # artifacts and events lie below the fold at 80×24
        await pilot.press("pagedown")
        await pilot.pause()
        paged = scroll.scroll_y
        assert paged > 0
        await pilot.press("j")
        await pilot.pause()
        assert scroll.scroll_y == paged + 1
        await pilot.press("k", "up")
        await pilot.pause()
        assert scroll.scroll_y == paged - 1
        await pilot.press("end")
        await pilot.pause()
        assert scroll.scroll_y == scroll.max_scroll_y
        assert "event number 19" in str(detail.query_one("#overview-text", Static).render())
        await pilot.press("home")
        await pilot.pause()
        assert scroll.scroll_y == 0
        await pilot.press("L")  # another tab takes the focus, and gives it back
        await pilot.pause()
        assert app.focused is detail.query_one(Log)
        await pilot.press("o", "down")
        await pilot.pause()
        assert app.focused is scroll and scroll.scroll_y == 1
        await pilot.press("right")  # arrows left/right still switch tabs (the overview never scrolls sideways)
        await pilot.pause()
        assert detail.query_one("TabbedContent").active == "logs"


# item 10: cancel and delete, asked first ---------------------------------------------------------
SLEEPER = """
[project]
name = "sleeper"
[experiments.nap]
image = "busybox:latest"
command = ["sleep", "120"]
"""


@pytest.fixture
def sleeping_runs(wb, make_project):
    """Two live runs (the process executor: a real process each), cancelled at the end whatever happens."""
    root = make_project(SLEEPER)
    runs = [wb.launch(str(root), executor="process").id for _ in range(2)]
    yield runs
    for run_id in runs:
        try:
            wb.cancel(run_id)
        except NotFound:
            pass


def status_of(wb, run_id: str) -> str:
    return wb._services.store.get_run(run_id)["status"]


async def test_cancel_asks_first_on_the_runs_screen_and_the_detail(wb, sleeping_runs):
    cancelled, other = sleeping_runs
    app = WorkbenchApp(wb)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=table.get_row_index(cancelled))
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and cancelled in app.screen.question
        await pilot.press("n")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        assert status_of(wb, cancelled) == "running" and status_of(wb, other) == "running"

        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == cancelled
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await settle(app, pilot)
        assert status_of(wb, cancelled) == "running"

        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await until(app, pilot, lambda: status_of(wb, cancelled) == "cancelled")
        assert status_of(wb, other) == "running"
        await until(app, pilot, lambda: app.screen.run is not None and app.screen.run.status == "cancelled")
        await pilot.press("c")  # an ended run: said so, nothing asked
        await pilot.pause()
        assert isinstance(app.screen, RunDetailScreen)
        assert any("already ended" in n.message for n in app._notifications)


async def test_delete_of_a_live_run_offers_to_cancel_it_first(wb, sleeping_runs):
    doomed, other = sleeping_runs
    app = WorkbenchApp(wb)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=table.get_row_index(doomed))
        await pilot.press("enter")
        await settle(app, pilot)
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "is running: cancel it, then delete" in app.screen.question
        await pilot.press("y")
        await until(app, pilot, lambda: isinstance(app.screen, RunsScreen) and doomed not in row_keys(app))
        with pytest.raises(NotFound):
            wb._services.store.get_run(doomed)
        assert not wb.dirs.run_dir(doomed).exists()
        assert status_of(wb, other) == "running"
        assert any(n.message == f"run {doomed} deleted" for n in app._notifications)
        assert not any("no longer exists" in n.message for n in app._notifications)


async def test_delete_asks_then_removes_the_run_and_its_row(seeded):
    wb = seeded
    run_dir = wb.dirs.run_dir("r0000005")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs.txt").write_text("2026-01-01T00:00:00Z out hi\n")
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        assert row_keys(app)[0] == "r0000005"
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "Delete run r0000005" in app.screen.question
        await pilot.press("n")
        await settle(app, pilot)
        assert row_keys(app)[0] == "r0000005" and wb._services.store.get_run("r0000005")
        await pilot.press("c")  # a finished run: nothing to cancel, nothing asked
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)

        table = app.screen.query_one("#runs-table", DataTable)
        added, removed = [], []
        real_add, real_remove, real_clear = table.add_row, table.remove_row, table.clear
        table.add_row = lambda *a, **k: added.append(k.get("key")) or real_add(*a, **k)
        table.remove_row = lambda key: removed.append(key) or real_remove(key)
        table.clear = lambda *a, **k: pytest.fail("the table was rebuilt instead of updated by difference")
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await until(app, pilot, lambda: "r0000005" not in row_keys(app))
        await settle(app, pilot)
        assert row_keys(app) == [f"r{i:07d}" for i in range(4, -1, -1)]
        assert removed == ["r0000005"] and added == []
        assert table.cursor_row == 0  # on the next run
        with pytest.raises(NotFound):
            wb._services.store.get_run("r0000005")
        assert wb._services.store.query("SELECT count(*) FROM params WHERE run_seq NOT IN (SELECT seq FROM runs)")[0][0] == 0
        assert not run_dir.exists()
        table.clear = real_clear

        await pilot.press("enter")  # and from the detail: it closes
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == "r0000004"
        await pilot.press("d", "y")
        await until(app, pilot, lambda: isinstance(app.screen, RunsScreen) and "r0000004" not in row_keys(app))
        with pytest.raises(NotFound):
            wb._services.store.get_run("r0000004")


async def test_delete_key_is_in_the_footer_and_help(seeded):
    from workbench.tui.screens.help import HelpScreen

    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        shown = {b.binding.id for b in app.screen.active_bindings.values() if b.binding.show}
        assert "runs.delete" in shown
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        ids = {row[-1] for row in app.screen.rows}
        assert {"runs.delete", "runs.sort_value", "runs.cancel"} <= ids


# item 14: key=value filter and sort by a param or metric --------------------------------------------
async def test_filter_matches_key_value_as_the_table_shows_it(seeded):
    app = WorkbenchApp(seeded, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        assert "lr=0.05" in str(table.get_cell("r0000001", "params"))
        await pilot.press("slash", *"lr=0.05")
        await settle(app, pilot)
        assert row_keys(app) == ["r0000001"]
        status = str(app.screen.query_one("#runs-status", Static).render())
        assert "1–1 of 1" in status and "lr=0.05" in status
        await pilot.press("ctrl+a", "ctrl+k", *"lr=0.0333 epochs=15")  # two terms, the first as rounded on screen
        await settle(app, pilot)
        assert row_keys(app) == ["r0000002"]
        await pilot.press("escape")
        await settle(app, pilot)
        assert len(row_keys(app)) == 6


async def test_sort_by_a_param_then_a_metric_with_missing_values_last(seeded):
    wb = seeded
    add_run(wb, "nometric", params={"lr": 0.5}, created=NOW + 10)  # the newest; no metrics at all
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        assert row_keys(app)[0] == "nometric"
        await pilot.press("o", "o")  # params A-Z: epochs, then lr, largest first
        await settle(app, pilot)
        assert row_keys(app) == ["nometric"] + [f"r{i:07d}" for i in range(6)]
        assert "sort param:lr ↓" in str(app.screen.query_one("#runs-status", Static).render())
        await pilot.press("o", "o")  # then metrics A-Z: acc, then loss
        await settle(app, pilot)
        assert app.screen.query_state.sort == "metric:loss"
        assert row_keys(app) == [f"r{i:07d}" for i in range(5, -1, -1)] + ["nometric"]
        await pilot.press("S")  # smallest first: the run without the metric stays last
        await settle(app, pilot)
        assert row_keys(app) == [f"r{i:07d}" for i in range(6)] + ["nometric"]
        await pilot.press("o")  # after the last metric: back to newest first
        await settle(app, pilot)
        assert app.screen.query_state.sort == "created" and row_keys(app)[0] == "nometric"


async def test_a_followed_run_is_only_read_never_ingested_by_the_detail(wb):
    """The 1 s refresh builds no ingestor (nor its thread pool) for a run that a follower owns."""
    from workbench.store.leases import lease_name

    add_run(wb, "followed", status="running")
    assert wb._services.store.acquire_lease(lease_name("followed"), "a-follower", ttl=60)
    calls: list[str] = []
    real_refresh = wb.refresh_run
    wb.refresh_run = lambda ref: calls.append(ref) or real_refresh(ref)
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        detail = app.screen
        for _ in range(3):
            detail.reload()
            await settle(app, pilot)
        assert detail.run.status == "running" and calls == []
        wb._services.store.release_lease(lease_name("followed"), "a-follower")  # its follower died: the detail catches up
        detail.reload()
        await settle(app, pilot)
        assert calls == ["followed"]
