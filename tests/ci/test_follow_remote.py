"""The follower with `--remote`: a bare repository as `origin` pushed to from another clone, a path that is no
configured remote, the loopback SSH host as a remote over SSH, and a remote that stops answering and comes back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from test_follow import Lines, bench, followers, rows  # noqa: F401 - fixtures shared with the local tests

IDENTITY = {"GIT_AUTHOR_NAME": "Bo", "GIT_AUTHOR_EMAIL": "bo@example.org", "GIT_COMMITTER_NAME": "Bo",
            "GIT_COMMITTER_EMAIL": "bo@example.org"}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **IDENTITY})
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def published(git_project, tmp_path) -> tuple[Path, Path]:
    """The project pushed to a bare repository, and another clone of that (a colleague's, a CI box's)."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git_project.git("push", "-q", str(bare), "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    return bare, clone


def push_commit(clone: Path, acc: float, message: str, to: str = "origin") -> str:
    (clone / "acc.txt").write_text(f"{acc}\n")
    git(clone, "commit", "-qam", message)
    git(clone, "push", "-q", to, "HEAD:main")
    return git(clone, "rev-parse", "HEAD")


def follow(bench, project, followers, remote: str):
    lines = Lines()
    follower = bench.ci_watch(str(project.path), lines, remote=remote, fetch_every=0.5)
    followers.append(follower)
    return follower, lines


def test_a_bare_origin_pushed_to_from_another_clone(bench, git_project, followers, tmp_path):
    bare, clone = published(git_project, tmp_path)
    git_project.git("remote", "add", "origin", str(bare))
    follower, lines = follow(bench, git_project, followers, "origin")
    assert follower.branch == "origin/main"
    lines.wait_for(f"{git_project.head()[:8]} PASS")
    sha = push_commit(clone, 0.97, "pushed from the other clone")
    lines.wait_for(f"{sha[:8]} PASS acc=0.97")
    assert rows(bench, git_project)[sha]["branch"] == "origin/main"
    assert git_project.head("refs/remotes/origin/main") == sha and git_project.head("main") != sha


def test_a_path_that_is_no_configured_remote(bench, git_project, followers, tmp_path):
    bare, clone = published(git_project, tmp_path)
    follower, lines = follow(bench, git_project, followers, str(bare))
    assert follower.branch == f"{bare}/main"
    lines.wait_for(f"{git_project.head()[:8]} PASS")
    sha = push_commit(clone, 0.96, "pushed to the path")
    lines.wait_for(f"{sha[:8]} PASS acc=0.96")
    assert git_project.git("remote") == ""  # nothing configured on the user's behalf


def test_the_loopback_ssh_host_as_a_remote(bench, git_project, followers, tmp_path, ssh_env, monkeypatch):
    host = ssh_env.cpu
    bare, clone = published(git_project, tmp_path)  # on this machine's disk: what the SSH host serves
    known = tmp_path / "known_hosts"
    known.write_text(host.known_hosts_line("ed25519"))
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -i {ssh_env.user_key} -o IdentitiesOnly=yes -o BatchMode=yes "
                                          f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes")
    url = f"ssh://root@{host.address}:{host.port}{bare}"
    follower, lines = follow(bench, git_project, followers, url)
    lines.wait_for(f"{git_project.head()[:8]} PASS")
    sha = push_commit(clone, 0.98, "pushed, fetched over SSH")
    lines.wait_for(f"{sha[:8]} PASS acc=0.98")
    assert lines.count("does not answer") == 0
    assert rows(bench, git_project)[sha]["branch"] == f"{url}/main"


def test_a_remote_that_stops_answering_is_said_once_retried_and_recovers(bench, git_project, followers, tmp_path):
    bare, clone = published(git_project, tmp_path)
    follower, lines = follow(bench, git_project, followers, str(bare))
    lines.wait_for(f"{git_project.head()[:8]} PASS")
    away = bare.rename(tmp_path / "moved.git")
    said = lines.wait_for("does not answer")
    assert f"remote {bare} does not answer (" in said and "retrying every 0.5s" in said
    sha = push_commit(clone, 0.91, "pushed while it was away", to=str(away))
    follower.wait(1.5)  # three more fetches fail meanwhile: said once
    assert lines.count("does not answer") == 1 and lines.count(sha[:8]) == 0 and follower.wait(0)
    away.rename(bare)
    lines.wait_for(f"remote {bare} answers again")
    lines.wait_for(f"{sha[:8]} PASS acc=0.91")
