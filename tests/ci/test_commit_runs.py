"""A commit as a run (services/ci_runs.py) and `workbench ci list`: built from the commit's tree, never the work
tree; a broken spec recorded as a failed run; verdicts, deltas and notes read from the runs."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from workbench.errors import WorkbenchError
from workbench.projects.git_repo import GitRepo, remote_slug
from workbench.services import Workbench, ci_runs

from helpers import assert_one_line_error
from git_projects import GitProject, git


def wait_ended(wb: Workbench, run_id: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = wb._services.store.get_run(run_id)
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end in {timeout}s")


@pytest.fixture
def wb(home, docker_client):
    workbench = Workbench()
    yield workbench
    workbench.close()


def launch(wb: Workbench, project: GitProject, ref: str = "HEAD", branch: str | None = "main") -> dict:
    repo = GitRepo(project.path)
    return ci_runs.launch_commit(wb._services, repo, repo.commit(ref), "train", project="ciproj", branch=branch)


def test_a_commit_runs_its_own_tree_not_the_work_tree(wb, git_project):
    sha = git_project.head()
    (git_project.path / "acc.txt").write_text("0.1\n")  # uncommitted: must not leak into the commit's run
    (git_project.path / "untracked.txt").write_text("not in the commit\n")
    run = wait_ended(wb, launch(wb, git_project)["id"])
    assert run["status"] == "succeeded" and run["verdict"] == "pass"
    assert run["git_commit"] == sha and run["git_dirty"] == 0
    assert run["project_path"] == str(git_project.path.resolve())
    snapshot = wb._services.dirs.snapshots / run["snapshot"]
    assert (snapshot / "acc.txt").read_text() == "0.95\n"
    assert not (snapshot / "untracked.txt").exists()
    status = git(git_project.top, "status", "--porcelain")  # the user's work tree and index are untouched
    assert "M acc.txt" in status and "?? untracked.txt" in status
    assert (git_project.path / "acc.txt").read_text() == "0.1\n"
    assert not list(ci_runs.exports_dir(wb._services).iterdir())  # the written-out tree is gone


def test_a_project_in_a_subfolder_runs_from_its_folder_and_its_tree_ignores_the_rest(wb, tmp_path):
    project = GitProject(tmp_path / "mono", subdir="models/cls")
    repo = GitRepo(project.path)
    first = repo.commit("HEAD")
    other = project.commit("docs elsewhere", files={"../../README.md": "hello\n"})
    trees = repo.project_trees([first, repo.commit(other)])
    assert trees[first.sha] == trees[other] != first.tree  # only the project's folder counts
    run = wait_ended(wb, ci_runs.launch_commit(wb._services, repo, repo.commit(other), "train", project="ciproj",
                                               branch="main", tree=trees[other])["id"])
    assert run["status"] == "succeeded" and run["git_commit"] == other
    assert wb._services.store.ci_runs_of_tree(str(project.path.resolve()), "train", trees[first.sha])[0]["run_id"] \
        == run["id"]


def test_a_broken_spec_at_a_commit_is_a_failed_run_saying_why(wb, git_project):
    sha = git_project.commit("break the spec", files={"workbench.toml": "[project\nname = 1\n"})
    run = launch(wb, git_project)
    assert run["status"] == "failed" and run["started_at"] is None and run["git_commit"] == sha
    assert run["status_reason"].startswith(f"{sha[:8]}:workbench.toml")
    assert str(wb._services.dirs.data) not in run["status_reason"]  # where it was written out is not said
    row = wb._services.store.ci_commits(str(git_project.path.resolve()), [sha])[0]
    assert ci_runs.verdict(row) == "FAIL"
    assert ci_runs.bisect_outcome(row, []) == "skip"  # it could not run: no judgement of the commit


def test_an_exit_125_cannot_judge_its_commit(wb, git_project):
    git_project.commit("cannot judge", acc="skip")
    run = wait_ended(wb, launch(wb, git_project)["id"])
    assert run["exit_code"] == 125
    row = wb._services.store.ci_commits(str(git_project.path.resolve()))[0]
    assert ci_runs.verdict(row) == "SKIP" and ci_runs.bisect_outcome(row, []) == "skip"


def test_ci_list_shows_verdicts_deltas_and_the_notes_say_them(wb, git_project, cli):
    shas = [git_project.head(), git_project.commit("worse", acc=0.5), git_project.commit("skipped one", acc=0.7),
            git_project.commit("better", acc=0.97)]
    repo = GitRepo(git_project.path)
    store = wb._services.store
    for ref in (shas[0], shas[1], shas[3]):
        wait_ended(wb, launch(wb, git_project, ref)["id"])
    ci_runs.record_skipped(wb._services, repo, [repo.commit(shas[2])], "train", branch="main", why="a newer one")
    done = cli("ci", "list", str(git_project.path), "--json")
    assert done.code == 0, done.err
    listed = done.json()
    assert [c["sha"] for c in listed] == shas[::-1]
    assert [c["verdict"] for c in listed] == ["PASS", "skipped", "FAIL", "PASS"]
    assert listed[3]["metrics"] == {"acc": 0.95} and listed[3]["deltas"] == {}
    assert listed[3]["better"] == {"acc": "higher"} and listed[1]["better"] == {}  # from `acc >= 0.9`; skipped
    assert listed[2]["deltas"]["acc"] == pytest.approx(-0.45)
    assert listed[0]["deltas"]["acc"] == pytest.approx(0.47)  # against 0.5, the previous evaluated commit
    table = cli("ci", "list", str(git_project.path)).out
    assert "FAIL" in table and "acc=0.5 (-0.45)" in table and "worse" in table
    for sha in shas[:2]:
        row = store.ci_commits(str(git_project.path.resolve()), [sha])[0]
        assert ci_runs.write_note(wb._services, repo, row)
    log = git_project.git("log", "--notes=workbench", "--format=%h %N")
    assert f"workbench: PASS acc=0.95 (run {listed[3]['run_id']})" in log
    assert f"workbench: FAIL acc=0.5 (run {listed[2]['run_id']})" in log
    assert git_project.git("notes", "list") == ""  # the user's own notes ref is never written


def test_ci_list_bad_inputs_are_one_line(cli, tmp_path, git_project):
    plain = tmp_path / "plain"
    plain.mkdir()
    cases = [
        (["ci", "list", str(plain)], "is not in a git repository"),
        (["ci", "list", str(tmp_path / "missing")], "no such folder"),
        (["ci", "list", str(git_project.path), "--branch", "nope"], "has no branch 'nope'"),
    ]
    for args, said in cases:
        assert_one_line_error(cli(*args), said)
    git_project.git("checkout", "-q", "--detach")
    assert_one_line_error(cli("ci", "list", str(git_project.path)), "HEAD is detached", "--branch")


def test_gc_removes_the_trees_of_killed_ci_launches_only(wb):
    folder = ci_runs.exports_dir(wb._services)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = folder / f"tree-{dead.pid}-abc-01", folder / f"tree-{os.getpid()}-abc-02"
    for tree in (stale, live):
        (tree / "sub").mkdir(parents=True)
        (tree / "sub" / "f").write_text("x")
    wb.gc()
    assert not stale.exists() and live.exists()


def test_a_project_without_a_name_is_named_by_its_folder_not_the_written_out_tree(wb, tmp_path):
    project = GitProject(tmp_path / "unnamed")
    project.commit("no [project] name", files={"workbench.toml": project.path.joinpath("workbench.toml").read_text()
                                                .replace('name = "ciproj"\n', "")})
    run = wait_ended(wb, launch(wb, project)["id"])
    assert run["project"] == "unnamed" and run["status"] == "succeeded"
    assert [p.name for p in wb.projects()] == ["unnamed"]


def test_a_commit_without_the_project_folder_is_a_failed_run_saying_so(wb, tmp_path):
    project = GitProject(tmp_path / "mono", subdir="models/cls")
    project.git("rm", "-rq", "models")
    sha = project.commit("move the model away")
    project.git("checkout", "-q", f"{sha}~1", "--", "models")
    project.commit("bring it back")
    repo = GitRepo(project.path)
    run = ci_runs.launch_commit(wb._services, repo, repo.commit(sha), "train", project="ciproj", branch="main")
    assert run["status"] == "failed" and f"cannot write out commit {sha[:8]}" in run["status_reason"]


def test_a_commit_with_a_run_is_never_marked_skipped_after(wb, git_project):
    repo = GitRepo(git_project.path)
    commit = repo.commit("HEAD")
    run = wait_ended(wb, launch(wb, git_project)["id"])
    ci_runs.record_skipped(wb._services, repo, [commit], "train", branch="main", why="a newer one")
    row = wb._services.store.ci_commits(str(repo.path), [commit.sha])[0]
    assert (row["state"], row["run_id"], ci_runs.verdict(row)) == ("run", run["id"], "PASS")


def test_branch_names_and_remotes_are_never_options_or_patterns(git_project, tmp_path):
    repo = GitRepo(git_project.path)
    for bad in ("-x", "ma*in", "a..b"):
        with pytest.raises(WorkbenchError, match="not a valid branch name"):
            repo.check_branch(bad)
    with pytest.raises(WorkbenchError, match="give a remote's name, a path or a URL"):
        repo.normalize_remote("--upload-pack=touch /tmp/x")
    assert repo.normalize_remote("../elsewhere", cwd=tmp_path) == str(tmp_path.parent / "elsewhere")
    assert repo.normalize_remote("ssh://git@host:22/srv/p.git") == "ssh://git@host:22/srv/p.git"
    assert repo.normalize_remote("git@host:srv/p.git") == "git@host:srv/p.git"
    slugs = {remote_slug(r) for r in ("/srv/p.git", "/a b/x", "/a-b/x", "/srv.lock", "/y..git")}
    assert len(slugs) == 5
    for slug in slugs:
        assert git_project.git("check-ref-format", f"refs/workbench/remotes/{slug}/main", check=False) == ""
