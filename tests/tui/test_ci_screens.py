"""CI on commits in the app (issue 25): Projects → enter → the project's commits with their verdicts, metrics and
deltas (enter opens a commit's run), `f` follows the branch in the background and stops it, a folder that is
not in a git repository is said in one dim line, the Dashboard lists followed branches. Real git repositories
(the git CLI), real runs on the Docker engine, real SQLite; Pilot at 80×24 and an SVG snapshot."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from textual.color import Color
from textual.widgets import DataTable, Static

from fixture_db import NOW
from helpers import background_pids, wait_for
from test_models_screen import shown_lines
from test_run_screens import settle, until
from workbench.projects.git_repo import GitRepo
from workbench.services import ci_runs
from workbench.store.ingest import MetricBatch, Offset
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.ci_commits import CiCommitsScreen
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.launch_form import LaunchForm
from workbench.tui.screens.run_detail import RunDetailScreen

sys.path.append(str(Path(__file__).resolve().parents[1] / "ci"))
from git_projects import GitProject  # noqa: E402  (tests/ci's real git repositories, shared rather than copied)

HOUR = 3600


def dated(monkeypatch, when: float) -> None:
    """The next commits' author and committer dates: fixed dates, contents and authors give fixed shas."""
    for name in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.setenv(name, f"@{int(when)} +0000")


def commit_at(monkeypatch, project: GitProject, when: float, message: str, **kwargs) -> str:
    dated(monkeypatch, when)
    return project.commit(message, **kwargs)


def launch(wb, project: GitProject, sha: str) -> str:
    repo = GitRepo(project.path)
    return ci_runs.launch_commit(wb._services, repo, repo.commit(sha), "train", project="ciproj", branch="main")["id"]


def wait_ended(wb, run_id: str, timeout: float = 90.0) -> None:
    wait_for(lambda: wb._services.store.get_run(run_id)["status"] not in ("queued", "running"), timeout, 0.2)


async def open_commits(app, pilot) -> CiCommitsScreen:
    """`3`, enter on the one project listed: its commits' screen, loaded."""
    await pilot.press("3")
    await until(app, pilot, lambda: app.screen.query_one("#projects-table", DataTable).row_count == 1)
    app.screen.query_one("#projects-table", DataTable).focus()
    await pilot.press("enter")
    await until(app, pilot, lambda: isinstance(app.screen, CiCommitsScreen) and app.screen.loads > 0)
    return app.screen


def column(screen: CiCommitsScreen, name: str) -> list[str]:
    table = screen.table
    return [str(table.get_cell(key, name)) for key in table.rows]


def follow_text(app, screen: CiCommitsScreen) -> str:
    return " ".join(line.strip() for line in shown_lines(app, screen.query_one("#ci-follow", Static)))


@pytest.mark.usefixtures("docker_client")
async def test_enter_lists_the_commits_with_verdicts_and_opens_a_commits_run(wb, tmp_path, monkeypatch):
    project = GitProject(tmp_path / "repo")
    good = project.commit("tune the learning rate", acc=0.97)
    bad = project.commit("a faster loss that breaks training", acc=0.5)
    runs = {sha: launch(wb, project, sha) for sha in (good, bad)}
    for run_id in runs.values():
        wait_ended(wb, run_id)
    wb.add_project(str(project.path))
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_commits(app, pilot)
        assert str(screen.query_one("#ci-title", Static).render()) == "ciproj · main"
        assert column(screen, "verdict") == ["FAIL", "PASS", "not evaluated"]
        assert column(screen, "commit") == [bad[:8], good[:8], project.head("HEAD~2")[:8]]
        assert column(screen, "run") == [runs[bad], runs[good], "-"]
        metrics = screen.table.get_cell(bad, "metrics")
        assert str(metrics) == "acc=0.5 -0.47"  # against the previous evaluated commit
        assert [str(span.style) for span in metrics.spans] == ["red"]
        assert str(screen.table.get_cell(bad, "verdict").style) == "bold red"
        assert "not followed: f follows this branch" in follow_text(app, screen)

        screen.table.focus()
        await pilot.press("down")  # the PASS commit; the cursor stays on it when a new commit comes
        newer = project.commit("notes", files={"NOTES.md": "x\n"})
        await until(app, pilot, lambda: screen.table.row_count == 4)
        assert column(screen, "commit")[0] == newer[:8] and screen.selected().sha == good

        await pilot.press("enter")
        await until(app, pilot, lambda: isinstance(app.screen, RunDetailScreen))
        assert app.screen.run_id == runs[good]
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("k", "k")  # to the newest commit, which has no run: said, nothing opens
        assert screen.selected().sha == newer
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen is screen
        assert any(f"{newer[:8]} has no run (not evaluated)" in str(n.message) for n in app._notifications)
        await pilot.press("l")  # launching moved to `l`, here as on Projects
        await until(app, pilot, lambda: isinstance(app.screen, LaunchForm))


@pytest.mark.usefixtures("docker_client")
async def test_f_follows_the_branch_in_the_background_and_stops_it(wb, home, tmp_path):
    project = GitProject(tmp_path / "repo")
    wb.add_project(str(project.path))
    app = WorkbenchApp(wb)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_commits(app, pilot)
            await pilot.press("f")
            await until(app, pilot, lambda: "following main (pid" in follow_text(app, screen), timeout=30)
            (pid,) = background_pids(home, (b"_ci_follow",))
            assert f"pid {pid}" in follow_text(app, screen)
            assert any("following main in the background" in str(n.message) for n in app._notifications)
            # the head had no verdict: the follower runs it, and the screen shows it as it goes
            await until(app, pilot, lambda: column(screen, "verdict") == ["PASS"], timeout=90)

            await pilot.press("f")
            await until(app, pilot, lambda: "not followed: f follows this branch" in follow_text(app, screen))
            assert any("stopped following main" in str(n.message) for n in app._notifications)
            wait_for(lambda: not background_pids(home, (b"_ci_follow",)), timeout=15)
    finally:
        for pid in background_pids(home, (b"_ci_follow",)):
            os.kill(pid, signal.SIGTERM)


async def test_a_folder_not_in_git_is_said_in_one_dim_line(wb, make_project):
    wb.add_project(str(make_project('[project]\nname = "plain"\n[experiments.t]\nimage = "busybox:latest"\n'
                                    'command = ["true"]\n')))
    app = WorkbenchApp(wb)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_commits(app, pilot)
        widget = screen.query_one("#ci-follow", Static)
        line = follow_text(app, screen)
        assert "is not in a git repository" in line and "`git init` there and commit" in line
        strips = app.screen._compositor.render_strips()
        text_segments = [s for y in range(widget.region.y, widget.region.bottom) for s in strips[y] if s.text.strip()]
        foreground = Color.parse(app.current_theme.foreground).brightness
        assert text_segments and all(Color.from_rich_color(s.style.color).brightness < foreground - 0.1
                                     for s in text_segments)  # dim: the muted text colour
        assert screen.table.row_count == 0
        assert not [n for n in app._notifications if n.severity == "error"]
        await pilot.press("f")  # nothing to follow: said, no crash
        await settle(app, pilot)
        assert any("no branch to follow" in str(n.message) for n in app._notifications)
        await pilot.press("escape")
        assert app.screen.query_one("#projects-table", DataTable)


# deterministic data: fixed dates give fixed shas; runs recorded with fixed ids ----------------------------
def recorded_run(wb, project: GitProject, sha: str, run_id: str, acc: float | None, status: str = "succeeded",
                 verdict: str | None = None) -> None:
    """A finished run of `sha` recorded as CI records one (its summary as its metrics would leave it)."""
    store = wb._services.store
    repo = GitRepo(project.path)
    commit = repo.commit(sha)
    seq = store.insert_run({
        "id": run_id, "project": "ciproj", "project_path": str(repo.path), "experiment": "train",
        "status": status, "machine": "local", "executor": "docker", "created_at": commit.committed_at + 60,
        "started_at": None if status == "queued" else commit.committed_at + 61,
        "finished_at": None if status in ("queued", "running") else commit.committed_at + 90,
        "exit_code": None if status in ("queued", "running") else 0, "params": {}, "argv": ["sh", "train.sh"],
        "git_commit": sha})
    if acc is not None:
        acc_key = store.key_id("acc")
        store.commit_metrics(seq, MetricBatch([(acc_key, 1, commit.committed_at + 80, acc)], 0, 0, {"acc": acc}),
                             Offset("0", 1, 0))
    if verdict:
        store.update_run(run_id, verdict=verdict)
    store.record_ci_commit(str(repo.path), "train", commit.record(), "run", branch="main", run_id=run_id)


def deterministic_history(wb, tmp_path, monkeypatch) -> GitProject:
    dated(monkeypatch, NOW - 30 * HOUR)
    project = GitProject(tmp_path / "repo")
    shas = [project.head()]
    for hours, message, acc in ((26, "tune the learning rate", 0.97), (20, "augment the training images", 0.981),
                                (8, "a faster loss that breaks training", 0.52), (3, "skip a flaky batch", 0.52),
                                (1, "revert the loss", 0.979)):
        shas.append(commit_at(monkeypatch, project, NOW - hours * HOUR, message, acc=acc))
    for sha, run_id, acc, verdict in ((shas[0], "c1000001", 0.95, "pass"), (shas[1], "c1000002", 0.97, "pass"),
                                      (shas[2], "c1000003", 0.981, "pass"), (shas[3], "c1000004", 0.52, "fail")):
        recorded_run(wb, project, sha, run_id, acc, verdict=verdict)
    store, repo = wb._services.store, GitRepo(project.path)
    store.record_ci_commit(str(repo.path), "train", repo.commit(shas[4]).record(), "skipped", branch="main",
                           reason=f"a newer commit ran ({shas[5][:8]})")
    wb.add_project(str(project.path))  # the newest commit: not evaluated
    return project


def test_the_commits_screen_at_80x24(snap_compare, wb, tmp_path, monkeypatch):
    deterministic_history(wb, tmp_path, monkeypatch)

    async def go(pilot):
        await open_commits(pilot.app, pilot)
        pilot.app.screen.table.focus()
        await pilot.press("down")
        await settle(pilot.app, pilot)

    assert snap_compare(WorkbenchApp(wb, clock=lambda: NOW), terminal_size=(80, 24), run_before=go)


async def test_the_dashboard_lists_followed_branches_three_at_most(wb, tmp_path, monkeypatch):
    project = deterministic_history(wb, tmp_path, monkeypatch)
    path = str(GitRepo(project.path).path)
    store = wb._services.store
    app = WorkbenchApp(wb, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(app, pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.rows)
        ci = app.screen.query_one("#ci-branches", Static)
        assert not ci.display  # nobody follows a branch: the Dashboard is as it always was

        store.follow_branch(path, "main", "train", remote=None, options={}, detached=True)
        await until(app, pilot, lambda: ci.display)
        await settle(app, pilot)
        failed = project.head("HEAD~2")  # the newest commit with a run
        assert [line.strip() for line in shown_lines(app, ci)] == [
            f"CI ciproj · main  ● no follower running · last FAIL {failed[:8]}"]

        for branch in ("dev", "exp-a", "exp-b", "exp-c"):
            store.follow_branch(path, branch, "train", remote=None, options={}, detached=True)
        await until(app, pilot, lambda: len(shown_lines(app, ci)) == 4)
        lines = [line.strip() for line in shown_lines(app, ci)]
        assert [line.split("  ")[0] for line in lines[:3]] == ["CI ciproj · dev", "CI ciproj · exp-a",
                                                                 "CI ciproj · exp-b"]
        assert lines[3] == "+2 more followed branch(es)"

        store.unfollow_branch(path)
        await until(app, pilot, lambda: not ci.display)


def test_a_change_is_coloured_by_the_way_its_check_wants_it():
    from workbench.services.answers import CiCommit
    from workbench.tui.screens.ci_commits import metrics_text

    commit = CiCommit(sha="a" * 40, subject="s", author="A", committed_at=0.0, verdict="PASS", run_id="r",
                      metrics={"loss": 0.2, "acc": 0.9, "lr": 0.1}, deltas={"loss": -0.1, "acc": -0.01, "lr": 0.05},
                      better={"loss": "lower", "acc": "higher"}, reason=None, experiment="train")
    text = metrics_text(commit)
    styles = {text.plain[span.start:span.end].strip(): str(span.style) for span in text.spans}
    assert styles == {"-0.1": "green", "-0.01": "red"}  # a falling loss is good news; lr has no check: plain
    assert "lr=0.1 +0.05" in text.plain
