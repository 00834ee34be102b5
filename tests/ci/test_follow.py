"""The branch follower (`ci watch`) on real git repositories and the real Docker engine: each new commit becomes a
run of its own tree, bursts run their newest, rewritten histories keep their runs, verdicts go to git notes, one
follower per branch, detached followers stop and come back, bad input is one line."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from helpers import assert_one_line_error, background_pids, wait_for
from workbench.errors import WorkbenchError

BACKGROUND = (b"_dispatch", b"_follow", b"_ci_follow")
ENDED = ("PASS", "FAIL", "SKIP", "cancelled", "lost")


class Lines:
    """A follower's `say`: every line kept, waited on by what it contains."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def wait_for(self, needle: str, timeout: float = 60) -> str:
        def found() -> str | None:
            with self._lock:
                return next((line for line in self.lines if needle in line), None)
        try:
            return wait_for(found, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"no line with {needle!r} in {self.lines}") from None

    def count(self, needle: str) -> int:
        with self._lock:
            return sum(needle in line for line in self.lines)


def end_background(home) -> None:
    for pid in background_pids(home, BACKGROUND):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


@pytest.fixture
def bench(home, docker_client):
    from workbench.services import Workbench

    wb = Workbench()
    yield wb
    end_background(home)
    wb.close()


@pytest.fixture
def followers():
    """Followers started by a test, stopped after it whatever happened."""
    started = []
    yield started
    for follower in started:
        follower.stop()


def rows(bench, project) -> dict[str, dict]:
    """Every commit recorded for the project, with its run's state."""
    return {row["sha"]: row for row in bench._services.store.ci_commits(str(project.path.resolve()))}


def ended(bench, project, sha: str, timeout: float = 90) -> dict:
    """The commit's row once its run ended."""
    def done():
        row = rows(bench, project).get(sha)
        return row if row and row.get("run_status") not in (None, "queued", "running") else None
    return wait_for(done, timeout=timeout)


def watch(bench, project, followers, **options):
    lines = Lines()
    follower = bench.ci_watch(str(project.path), lines, **options)
    followers.append(follower)
    return follower, lines


def test_a_commit_runs_its_own_tree_never_the_work_tree_and_its_verdict_goes_to_notes(bench, git_project,
                                                                                        followers):
    first = git_project.head()
    follower, lines = watch(bench, git_project, followers)
    assert follower.branch == "main"
    lines.wait_for(f"{first[:8]} PASS acc=0.95")  # the head had no verdict: run at start
    (git_project.path / "acc.txt").write_text("0.5\n")  # an edit never committed
    (git_project.path / "model.py").write_text("layers = 3\n")
    git_project.git("add", "model.py")
    git_project.git("commit", "-q", "-m", "three layers")
    second = git_project.head()
    line = lines.wait_for(f"{second[:8]} PASS")
    row = ended(bench, git_project, second)
    assert line == f"{second[:8]} PASS acc=0.95 (+0) run {row['run_id']}: three layers"
    assert (row["state"], row["subject"], row["author"], row["branch"]) == ("run", "three layers",
                                                                           "Ada <ada@example.org>", "main")
    assert [r.id for r in bench.runs() if r.id == row["run_id"]] and row["run_id"] in follower.runs
    run = bench.run(row["run_id"])
    assert run.git_commit == second
    wait_for(lambda: f"workbench: PASS acc=0.95 (run {row['run_id']})" in
             git_project.git("log", "-1", "--notes=workbench", second), timeout=10)
    assert (git_project.path / "acc.txt").read_text() == "0.5\n"  # the work tree untouched
    wait_for(lambda: follower.in_flight == [], timeout=10)


def test_the_head_runs_at_start_only_when_it_has_no_verdict(bench, git_project, followers):
    head = git_project.head()
    follower, lines = watch(bench, git_project, followers)
    lines.wait_for(f"{head[:8]} PASS")
    follower.stop()
    note = git_project.git("notes", "--ref=workbench", "show", head)
    git_project.git("notes", "--ref=workbench", "remove", head)  # as if its run ended while none followed
    again, lines2 = watch(bench, git_project, followers)
    lines2.wait_for("following main")
    wait_for(lambda: git_project.git("notes", "--ref=workbench", "show", head, check=False) == note, timeout=10)
    time.sleep(1)  # no event to wait on: nothing must happen, and the first look is done well within this
    assert again.runs == [] and lines2.count(head[:8]) == 0
    assert [bench.run(r.id).git_commit for r in bench.runs()] == [head]


def test_a_burst_runs_its_newest_and_skips_the_rest_unless_every_commit(bench, git_project, followers):
    follower, lines = watch(bench, git_project, followers)
    lines.wait_for("PASS")
    git_project.git("checkout", "-q", "-b", "work")
    burst = [git_project.commit(f"step {i}", acc=0.9 + i / 100) for i in range(1, 5)]
    git_project.git("checkout", "-q", "main")
    git_project.git("merge", "-q", "--ff-only", "work")  # one ref update: a pull's burst
    lines.wait_for(f"{burst[-1][:8]} PASS acc=0.94")
    lines.wait_for("3 older commit(s) skipped")
    recorded = rows(bench, git_project)
    assert recorded[burst[-1]]["state"] == "run"
    for sha in burst[:-1]:
        assert recorded[sha]["state"] == "skipped" and burst[-1][:8] in recorded[sha]["reason"]
        assert recorded[sha]["run_id"] is None
    assert len(follower.runs) == 2  # the head at start, the burst's newest
    follower.stop()

    every, lines = watch(bench, git_project, followers, every_commit=True)
    lines.wait_for("following main")
    git_project.git("checkout", "-q", "work")
    more = [git_project.commit(f"more {i}", acc=0.95) for i in range(3)]
    git_project.git("checkout", "-q", "main")
    git_project.git("merge", "-q", "--ff-only", "work")
    for sha in more:
        lines.wait_for(f"{sha[:8]} PASS")
    shas = [bench.run(run_id).git_commit for run_id in every.runs]
    assert shas == more  # oldest first
    assert lines.count("skipped") == 0


def test_a_rewritten_history_keeps_the_old_runs_and_runs_the_new_head(bench, git_project, followers):
    base = git_project.head()
    follower, lines = watch(bench, git_project, followers)
    lines.wait_for(f"{base[:8]} PASS")
    old = git_project.commit("experiment that will be dropped", acc=0.97)
    lines.wait_for(f"{old[:8]} PASS")
    git_project.git("reset", "-q", "--hard", base)
    new = git_project.commit("the better idea", acc=0.99)
    lines.wait_for("was rewritten")
    lines.wait_for(f"{new[:8]} PASS acc=0.99")
    recorded = rows(bench, git_project)
    assert recorded[old]["run_status"] == "succeeded" and recorded[old]["run_id"] in follower.runs
    assert recorded[new]["state"] == "run"
    assert len(follower.runs) == 3


def test_a_commit_with_a_broken_spec_is_a_failed_run_and_the_next_one_still_runs(bench, git_project, followers):
    follower, lines = watch(bench, git_project, followers)
    lines.wait_for("PASS")
    spec = (git_project.path / "workbench.toml").read_text()
    broken = git_project.commit("oops", files={"workbench.toml": "[project\nname = 'x'\n"})
    line = lines.wait_for(f"{broken[:8]} FAIL")
    assert "workbench.toml" in line and line.endswith(": oops"), line
    row = ended(bench, git_project, broken)
    assert row["run_status"] == "failed" and "workbench.toml" in row["run_reason"]
    fixed = git_project.commit("fixed", files={"workbench.toml": spec})
    lines.wait_for(f"{fixed[:8]} PASS")


def test_a_second_follower_of_the_branch_is_refused_in_one_line(bench, git_project, followers, cli):
    follower, lines = watch(bench, git_project, followers)
    lines.wait_for("following main")
    result = cli("ci", "watch", str(git_project.path), timeout=60)
    assert_one_line_error(result, "already followed", f"pid {os.getpid()}", "ci stop")
    assert follower.wait(0.1)  # the first one goes on


def test_ci_stop_ends_a_follower_in_the_foreground(bench, git_project, followers):
    follower, lines = watch(bench, git_project, followers)
    lines.wait_for("following main")
    assert follower.wait(0.5)
    began = time.monotonic()
    stopped = bench.ci_stop(str(git_project.path))
    assert [(b.branch, b.active, b.pid) for b in stopped] == [("main", False, None)]
    assert not follower.wait(0) and time.monotonic() - began < 3
    lines.wait_for("main is no longer followed (`ci stop`)")
    with pytest.raises(WorkbenchError, match="no branch of .* is followed"):
        bench.ci_stop(str(git_project.path))


def _detached_pid(home) -> int:
    """The one detached follower's pid (a process it forks shows its argv until it execs: not counted)."""
    def one() -> int | None:
        pids = background_pids(home, (b"_ci_follow",))
        return pids[0] if len(pids) == 1 else None
    return wait_for(one, timeout=10)


def test_a_detached_follower_runs_commits_until_ci_stop(cli, home, git_project, docker_client):
    started = cli("ci", "watch", str(git_project.path), "--detach", timeout=60)
    try:
        assert started.code == 0, started.err
        pid = _detached_pid(home)
        assert f"pid {pid}" in started.err
        sha = git_project.commit("a commit while detached", acc=0.96)

        def verdict_of(wanted: str) -> str | None:
            listed = cli("ci", "list", str(git_project.path), "--json", timeout=60).json()
            return next((c["verdict"] for c in listed if c["sha"] == wanted and c["verdict"] in ENDED), None)
        assert wait_for(lambda: verdict_of(sha), timeout=90, interval=0.5) == "PASS"
        logs = list((home / "ci-follow").glob("*.log"))
        assert len(logs) == 1 and f"{sha[:8]} PASS acc=0.96" in logs[0].read_text()
        stopped = cli("ci", "stop", str(git_project.path), timeout=60)
        assert stopped.code == 0 and "stopped following main" in stopped.err + stopped.out, stopped
        wait_for(lambda: pid not in background_pids(home, (b"_ci_follow",)), timeout=10)
        assert "follower of main ended" in logs[0].read_text()
        assert cli("ci", "stop", str(git_project.path), timeout=60).code == 1  # nothing followed now
    finally:
        end_background(home)


def test_a_killed_detached_follower_is_resumed_by_the_next_command(cli, home, git_project, docker_client):
    started = cli("ci", "watch", str(git_project.path), "--detach", timeout=60)
    try:
        assert started.code == 0, started.err
        pid = _detached_pid(home)
        wait_for(lambda: any(c["verdict"] == "PASS" for c in
                             cli("ci", "list", str(git_project.path), "--json", timeout=60).json()), timeout=90,
                 interval=0.5)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: pid not in background_pids(home, (b"_ci_follow",)), timeout=10)
        missed = git_project.commit("made while no follower ran", acc=0.93)
        listed = cli("runs", "list", timeout=60)  # a command that reconciles
        assert listed.code == 0 and "following main" in listed.err, listed.err
        resumed = _detached_pid(home)
        assert resumed != pid

        def verdict_of_missed() -> str | None:
            listed = cli("ci", "list", str(git_project.path), "--json", timeout=60).json()
            return next((c["verdict"] for c in listed if c["sha"] == missed and c["verdict"] in ENDED), None)
        assert wait_for(verdict_of_missed, timeout=90, interval=0.5) == "PASS"
        assert cli("ci", "stop", str(git_project.path), timeout=60).code == 0
        wait_for(lambda: not background_pids(home, (b"_ci_follow",)), timeout=10)
    finally:
        end_background(home)


@pytest.mark.parametrize("case", ["not a repository", "detached HEAD", "missing branch"])
def test_bad_input_is_one_line_and_records_nothing(cli, home, git_project, tmp_path, case):
    path, args = git_project.path, []
    if case == "not a repository":
        path = tmp_path / "plain"
        path.mkdir()
        (path / "workbench.toml").write_text((git_project.path / "workbench.toml").read_text())
        needle = "is not in a git repository"
    elif case == "detached HEAD":
        git_project.git("checkout", "-q", "--detach")
        needle = "HEAD is detached"
    else:
        args, needle = ["--branch", "nope"], "has no branch 'nope'"
    for detach in ([], ["--detach"]):
        assert_one_line_error(cli("ci", "watch", str(path), *args, *detach, timeout=60), needle)
    assert cli("runs", "list", "--json").json() == []
    assert cli("ci", "stop", str(path)).code == 1  # nothing was recorded as followed
    assert background_pids(home, BACKGROUND) == []


def test_a_detached_follower_that_cannot_start_is_tried_once_a_minute_not_by_every_command(cli, home, git_project,
                                                                                         docker_client):
    started = cli("ci", "watch", str(git_project.path), "--detach", timeout=60)
    try:
        assert started.code == 0, started.err
        pid = _detached_pid(home)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: pid not in background_pids(home, (b"_ci_follow",)), timeout=10)
        (git_project.path / "workbench.toml").write_text("[project\n")  # the work tree's spec, broken meanwhile
        for _ in range(4):  # commands that reconcile
            assert cli("runs", "list", timeout=60).code == 0
        time.sleep(1)
        logs = list((home / "ci-follow").glob("*.log"))
        said = "".join(p.read_text() for p in logs)
        assert said.count("cannot follow:") == 1, said  # one start tried, not one per command
        assert not background_pids(home, (b"_ci_follow",))
    finally:
        end_background(home)


def test_a_follower_in_a_terminal_leaves_its_branch_not_followed_when_it_ends(bench, git_project):
    follower = bench.ci_watch(str(git_project.path), Lines())
    assert [b.active for b in bench.ci_branches(str(git_project.path))] == [True]
    follower.stop()  # Ctrl-C in `ci watch`
    (branch,) = bench.ci_branches(str(git_project.path))
    assert (branch.active, branch.pid) == (False, None)
