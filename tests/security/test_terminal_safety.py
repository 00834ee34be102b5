"""Issue 8, item 13: what a run writes (log lines, metric names) is data, never terminal commands."""

from __future__ import annotations

import pytest
from textual.widgets import Log

from workbench.textsafe import log_text, printable

HOSTILE = """
[project]
name = "hostile"
[experiments.x]
image = "busybox:latest"
command = ["sh", "run.sh"]
"""
HOSTILE_SCRIPT = r"""
printf 'before\033[2J\033]0;pwned\007after\n'
printf 'colour \033[31mred\033[0m\n'
printf 'progress 10%%\rprogress 100%%\n'
printf '%s\n' '{"x[/y]": 1, "a\u001b[2Jb\nc": 2}' > "$WORKBENCH_METRICS"
"""


def test_printable_and_log_text_rules():
    assert printable("a\x1b[2J\nb\tc\x07") == "a\\x1b[2J\\nb\\tc\\x07"
    assert log_text("x\x1b[2J\x1b]0;title\x07y\x1b[1;31mz\x1b[0m") == "xyz"
    assert log_text("10%\r50%\r100%\r") == "100%"
    assert log_text("tab\tkept\x00\x08") == "tab\tkept"


@pytest.fixture
def hostile_run(cli, make_project):
    done = cli("run", str(make_project(HOSTILE, files={"run.sh": HOSTILE_SCRIPT})), "--wait", "--json")
    assert done.code == 0, done.err
    return done.json()["id"]


@pytest.mark.usefixtures("docker_client")
def test_cli_never_prints_escapes_unless_asked_for_raw(cli, hostile_run):
    logs = cli("runs", "logs", hostile_run).out
    assert "\x1b" not in logs and "\x07" not in logs
    assert logs.splitlines() == ["beforeafter", "colour red", "progress 100%"]
    raw = cli("runs", "logs", hostile_run, "--raw").out
    assert "\x1b[2J" in raw and "\x1b[31m" in raw
    shown = cli("runs", "show", hostile_run)
    assert "\x1b" not in shown.out and "a\\x1b[2Jb\\nc" in shown.out and "x[/y]" in shown.out
    listed = cli("runs", "list")
    assert "\x1b" not in listed.out
    # JSON keeps the exact key (escaped by JSON itself)
    metrics = cli("runs", "show", hostile_run, "--json").json()["metrics"]
    assert set(metrics) == {"x[/y]", "a\x1b[2Jb\nc"}


@pytest.mark.usefixtures("docker_client")
async def test_app_draws_no_escapes_and_shows_brackets_literally(home, hostile_run):
    from textual.content import Content
    from textual.widgets import Static

    from workbench.services import Workbench
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.screens.run_detail import RunDetailScreen
    from workbench.tui.widgets.metric_chart import MetricChart

    wb = Workbench()
    app = WorkbenchApp(wb)
    async with app.run_test(size=(100, 30)) as pilot:
        app.push_screen(RunDetailScreen(hostile_run))
        await pilot.pause()
        detail = app.screen
        for _ in range(100):
            await app.workers.wait_for_complete()
            await pilot.pause(0.1)
            if detail.query_one(Log).lines and len(detail.query(MetricChart)) == 2:
                break
        lines = list(detail.query_one(Log).lines)
        assert lines[:3] == ["beforeafter", "colour red", "progress 100%"]
        rendered = [Content.from_markup(chart.border_title).plain for chart in detail.query(MetricChart)]
        assert any(r.startswith("x[/y]") for r in rendered), rendered
        assert any(r.startswith("a\\x1b[2Jb\\nc") for r in rendered), rendered
        overview = detail.query_one("#overview-text", Static).render().plain
        assert "x[/y]" in overview and "\x1b" not in overview
    wb.close()


async def test_notifications_show_brackets_and_escapes_as_text(home):
    from workbench.services import Workbench
    from workbench.tui.app import WorkbenchApp

    wb = Workbench()
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        app.notify("changed x[/y].py \x1b[2J [b]", title="proj[/b]")  # a watch line names the changed file
        await pilot.pause()
        (note,) = [n for n in app._notifications if "changed" in n.message]
        assert note.message == "changed x[/y].py \\x1b[2J [b]" and note.title == "proj[/b]"
        assert app.is_running
    wb.close()


def test_cli_prints_hostile_folder_names_escaped(cli, tmp_path):
    root = tmp_path / "p\x1b[2Jq"
    root.mkdir()
    (root / "workbench.toml").write_text('[project]\nname = "p"\n[experiments.x]\nimage = "busybox:latest"\n'
                                         'command = ["true"]\n')
    assert cli("projects", "add", str(root)).code == 0
    listed = cli("projects", "list")
    assert "\x1b" not in listed.out and "p\\x1b[2Jq" in listed.out
