"""A project's git repository, through the user's own git CLI (their config, credentials and SSH set-up):
its branches and first-parent history, a commit's tree written out (never the work tree, never the index),
and Workbench's notes under refs/notes/workbench (no other notes ref is ever written)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError

NOTES_REF = "refs/notes/workbench"
FETCHED_PREFIX = "refs/workbench/remotes"  # where a remote given as a path or URL is fetched to
GIT_TIMEOUT = 30.0
FETCH_TIMEOUT = 60.0
_FORMAT = "%H%x1f%T%x1f%an <%ae>%x1f%ct%x1f%s%x1e"
_IDENTITY = ("-c", "user.name=Workbench", "-c", "user.email=workbench@localhost")


@dataclass(frozen=True)
class Commit:
    sha: str
    tree: str
    author: str
    committed_at: float
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:8]

    def record(self) -> dict[str, object]:
        return {"sha": self.sha, "tree": self.tree, "author": self.author, "committed_at": self.committed_at,
                "subject": self.subject}


class GitError(WorkbenchError):
    """git refused or failed; the message is its first line of stderr."""


def _parse(text: str) -> list[Commit]:
    commits = []
    for chunk in text.split("\x1e"):
        fields = chunk.strip("\n").split("\x1f")
        if len(fields) == 5:
            sha, tree, author, when, subject = fields
            commits.append(Commit(sha, tree, author, float(when), subject))
    return commits


def git_env(extra: dict[str, str] | None = None, *, batch_ssh: bool = True) -> dict[str, str]:
    """Never a prompt for a password (a detached follower has no terminal; a foreground one must not hang):
    git fails instead, and the remote is said not to answer. `batch_ssh`: ssh in batch mode with a connect
    timeout, unless the user chose how git runs ssh (GIT_SSH_COMMAND, GIT_SSH, or core.sshCommand, which the
    variable would override)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    if batch_ssh and not (env.get("GIT_SSH_COMMAND") or env.get("GIT_SSH")):
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o ConnectTimeout=10"
    return {**env, **(extra or {})}


class GitRepo:
    """The repository holding `path` (a project folder, anywhere inside its work tree)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        if not self.path.is_dir():
            raise WorkbenchError(f"{path}: no such folder")
        try:
            top, common = self._run("rev-parse", "--show-toplevel", "--git-common-dir", cwd=self.path).splitlines()
        except GitError:
            raise WorkbenchError(f"{self.path} is not in a git repository",
                                 hint=f"`git init` there and commit, or follow another folder") from None
        self.top = Path(top)
        common_dir = Path(common)
        self.common_dir = (common_dir if common_dir.is_absolute() else self.path / common_dir).resolve()
        self.prefix = self.path.relative_to(self.top.resolve()).as_posix() if self.path != self.top.resolve() else ""
        self._env = git_env(batch_ssh=not self._run("config", "core.sshCommand", check=False))

    # running git -----------------------------------------------------------------------------------
    def _run(self, *args: str, cwd: Path | None = None, timeout: float = GIT_TIMEOUT, env: dict[str, str] | None = None,
             check: bool = True) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=cwd or self.top, capture_output=True, timeout=timeout,
                                  env=env or getattr(self, "_env", None) or git_env(), stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise WorkbenchError("git is not installed", hint="install git") from None
        except subprocess.TimeoutExpired:
            raise GitError(f"git {args[0]} did not finish in {timeout:g}s") from None
        if check and done.returncode != 0:
            lines = [ln.strip() for ln in done.stderr.decode(errors="replace").splitlines() if ln.strip()]
            useful = [ln for ln in lines if not ln.startswith(("hint:", "warning:"))] or lines
            raise GitError(f"git {args[0]}: {useful[0] if useful else f'exit {done.returncode}'}")
        return done.stdout.decode(errors="replace").strip()

    # refs and commits ------------------------------------------------------------------------------
    def current_branch(self) -> str:
        name = self._run("symbolic-ref", "--quiet", "--short", "HEAD", cwd=self.path, check=False)
        if not name:
            head = self._run("rev-parse", "--short", "HEAD", cwd=self.path, check=False) or "no commit"
            raise WorkbenchError(f"{self.top}: HEAD is detached (at {head}); there is no current branch to follow",
                                 hint="name one with --branch NAME")
        return name

    def check_branch(self, branch: str) -> str:
        """`branch` when it is a valid branch name (never an option, a pattern or a range), else one line."""
        if branch.startswith("-") or not self._run("check-ref-format", "--branch", branch, check=False):
            raise WorkbenchError(f"{branch!r} is not a valid branch name")
        return branch

    def normalize_remote(self, remote: str, cwd: Path | None = None) -> str:
        """A configured remote's name or a URL as given; a path made absolute (from `cwd`, where the user
        typed it), so a detached follower fetches the same one. Never an option."""
        if remote.startswith("-") or not remote.strip():
            raise WorkbenchError(f"--remote {remote!r}: give a remote's name, a path or a URL")
        if self.is_remote_name(remote) or "://" in remote or re.match(r"^[^/:]+:", remote):
            return remote  # a name, a URL, or scp-like user@host:path
        return str((cwd or Path.cwd()).joinpath(Path(remote).expanduser()).resolve())

    def branch_ref(self, branch: str, remote: str | None = None) -> str:
        """The full ref a follower reads: refs/heads/B, or the fetched copy of the remote's B. Refused in one
        line when it does not exist."""
        if remote is None:
            ref = f"refs/heads/{branch}"
        elif self.is_remote_name(remote):
            ref = f"refs/remotes/{remote}/{branch}"
        else:
            ref = f"{FETCHED_PREFIX}/{remote_slug(remote)}/{branch}"
        return ref

    def is_remote_name(self, remote: str) -> bool:
        return remote in self._run("remote", check=False).split()

    def resolve(self, ref: str) -> str | None:
        """The commit `ref` names, or None when it names none."""
        sha = self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return sha or None

    def commit(self, ref: str) -> Commit:
        sha = self.resolve(ref)
        if sha is None:
            raise WorkbenchError(f"{self.top}: no commit {ref!r}")
        return _parse(self._run("show", "-s", f"--format={_FORMAT}", sha))[0]

    def first_parent(self, head: str, *, stop: str | None = None, limit: int | None = None) -> list[Commit]:
        """`head` and its first parents, newest first: back to (not including) `stop`, or `limit` of them."""
        args = ["rev-list", "--first-parent", f"--format={_FORMAT}", "--no-commit-header"]
        if limit is not None:
            args.append(f"--max-count={limit}")
        args.append(head)
        if stop is not None:
            args.append(f"^{stop}")
        try:
            return _parse(self._run(*args))
        except GitError as exc:
            if "no-commit-header" not in str(exc):
                raise
        # git before 2.33: every commit has a `commit <sha>` header line before its format
        out = self._run(*[a for a in args if a != "--no-commit-header"])
        return _parse(re.sub(r"(^|\x1e\n?)commit [0-9a-f]+\n", r"\1", out))

    def project_trees(self, commits: list[Commit]) -> dict[str, str]:
        """Each commit's tree of the project's folder (its whole tree when the project is the repository's
        top): commits that differ only outside the project have the same one. One git call for all."""
        if not self.prefix or not commits:
            return {c.sha: c.tree for c in commits}
        asked = "".join(f"{c.sha}:{self.prefix}\n" for c in commits)
        try:  # one answer line per question, in order: `<oid> tree <size>`, or `<question> missing`
            done = subprocess.run(["git", "cat-file", "--batch-check"], cwd=self.top, input=asked.encode(),
                                  capture_output=True, timeout=GIT_TIMEOUT, env=self._env)
            answers = done.stdout.decode(errors="replace").splitlines()
        except (OSError, subprocess.TimeoutExpired):
            answers = []
        trees = {}
        for commit, answer in zip(commits, answers):
            oid, kind = (answer.split() + ["", ""])[:2]
            trees[commit.sha] = oid if kind == "tree" else commit.tree  # the folder is not in that commit
        return {c.sha: trees.get(c.sha, c.tree) for c in commits}

    def is_ancestor(self, older: str, newer: str) -> bool:
        return subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=self.top, env=git_env(),
                              capture_output=True, timeout=GIT_TIMEOUT).returncode == 0

    # a commit's files ------------------------------------------------------------------------------
    def export(self, sha: str, dest: Path) -> Path:
        """Writes the project's folder of commit `sha` into `dest` and returns `dest` (through a private
        index: the user's index, work tree, refs and worktree list are untouched). Submodules are not written
        (a commit holds only their commit id)."""
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="wb-index-") as tmp:
            env = {**self._env, "GIT_INDEX_FILE": os.path.join(tmp, "index")}
            # only the project's folder (a monorepo's other folders are never written)
            self._run("read-tree", f"{sha}:{self.prefix}" if self.prefix else sha, env=env)
            self._run("checkout-index", "--all", "--force", f"--prefix={dest}/", env=env, timeout=300)
        return dest

    # notes -----------------------------------------------------------------------------------------
    def write_note(self, sha: str, text: str) -> None:
        """Workbench's note on `sha` (replacing its own earlier one), under refs/notes/workbench only."""
        identity = () if self._run("config", "user.email", check=False) else _IDENTITY
        self._run(*identity, "notes", f"--ref={NOTES_REF}", "add", "--force", "--message", text, sha)

    def note(self, sha: str) -> str | None:
        return self._run("notes", f"--ref={NOTES_REF}", "show", sha, check=False) or None

    def notes(self, head: str, limit: int) -> dict[str, str]:
        """Workbench's notes of `head` and its first parents (`limit` of them), in one git call: sha -> note
        (commits without one are left out)."""
        out = self._run("log", "--first-parent", f"--max-count={limit}", f"--notes={NOTES_REF}",
                        "--format=%H%x1f%N%x1e", head)
        found = {}
        for chunk in out.split("\x1e"):
            sha, _, text = chunk.strip("\n").partition("\x1f")
            if sha and text.strip():
                found[sha] = text.strip()
        return found

    # remotes ---------------------------------------------------------------------------------------
    def fetch(self, remote: str, branch: str, timeout: float = FETCH_TIMEOUT) -> str:
        """Fetches `branch` of `remote` (a configured remote's name, a path or a URL) and returns the ref it
        was fetched to."""
        ref = self.branch_ref(branch, remote)
        self._run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--end-of-options", remote,
                  f"+refs/heads/{self.check_branch(branch)}:{ref}", timeout=timeout)
        return ref


def remote_slug(remote: str) -> str:
    """A path or URL as one valid ref component, distinct for distinct remotes: `ssh://u@h:22/srv/p.git` ->
    `ssh-u-h-22-srv-p-git-1a2b3c4d` (readable part, then 8 hex of its sha1)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", remote).strip("-")[-60:].strip("-")
    return f"{slug or 'remote'}-{hashlib.sha1(remote.encode()).hexdigest()[:8]}"


def remove_export(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
