"""The branch follower (`workbench ci watch`): each new commit of a branch becomes a run of that commit's tree.

One follower per project folder and branch, by the lease `ci:<folder>:<branch>`. It never polls the world: it
watches the repository's refs (loose refs, packed-refs, reflogs; never objects/) with the folder watcher, and
looks once more every SAFETY_LOOK seconds (one `git rev-parse`) in case an event was missed. A burst (a pull, a
rebase) runs its newest commit and records the others skipped, unless every commit is wanted. A rewritten
history (force-push, rebase) keeps the old commits' runs and runs the new head. Each run's verdict is said in one
line and written to git notes. With a remote, a thread fetches it every `fetch_every` seconds; the fetched ref
moving is a change like any other.

Detached (`--detach`), the same follower runs in `workbench _ci_follow PATH BRANCH`, writing its lines to
<data>/ci-follow/<folder>-<branch>.log, until `ci stop` marks its row inactive (or SIGTERM); the next Workbench
command that reconciles starts it again when its process is gone (a reboot, a kill -9)."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from itertools import takewhile
from pathlib import Path
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.projects.git_repo import Commit, GitRepo, remote_slug
from workbench.projects.spec import load_spec
from workbench.projects.watcher import FolderWatcher
from workbench.services import ci
from workbench.services.ci_runs import (PENDING, default_experiment, format_value, launch_commit, metric_values,
                                        note_text, project_folder, record_skipped, run_checks, verdict, write_note)
from workbench.services.context import Services, first_line
from workbench.services.context import start_detached as start_process
from workbench.store.leases import LeaseKeeper, new_owner, owner_pid

LEASE_TTL, LEASE_RENEW = 10.0, 2.0
DEBOUNCE = 0.2        # a ref update is a few file writes (lock, rename, reflog): looked at once, at once
SAFETY_LOOK = 10.0    # one `git rev-parse` this often, in case the watcher missed a change
POLL_RUNS = 0.3       # in-flight runs looked at this often (one query)
ACTIVE_LOOK = 1.0     # whether `ci stop` asked it to end, this often (one query)
HISTORY_LIMIT = 200   # commits walked back from a new head to the last one seen
NOTES_CATCH_UP = 50   # recorded commits whose notes are brought up to date at start
DELTA_LOOK = 50       # commits walked back for the previous evaluated one (a verdict's change)
DETACH_WAIT = 5.0
RESTART_EVERY = 60.0  # a detached follower is started again at most this often
STOP_WAIT = 5.0
# Paths relative to the repository's git dir: a branch moving touches these (and only these) ...
REFS = ["refs/heads/**", "refs/remotes/**", "refs/workbench/**", "packed-refs", "logs/refs/**", "HEAD"]
# ... and the watcher never descends into the rest (objects/ can hold hundreds of folders); notes are ours.
NOT_REFS = ["objects/**", "hooks/**", "info/**", "lfs/**", "modules/**", "worktrees/**", "rr-cache/**",
            "refs/notes/**", "logs/refs/notes/**", "refs/tags/**"]


class FollowedElsewhere(WorkbenchError):
    """Another live follower holds the branch's lease."""


@dataclass(frozen=True)
class Target:
    """What one follower follows: a branch (or a remote's) of a repository, and the experiment its commits run."""
    repo: GitRepo
    key: str               # the branch, or REMOTE/BRANCH: the lease's and the ci_follows row's name
    name: str              # the branch's name
    ref: str               # the full ref read
    remote: str | None
    experiment: str
    project: str

    @property
    def lease(self) -> str:
        return ci.follow_lease(str(self.repo.path), self.key)


def branch_key(branch: str, remote: str | None) -> str:
    return f"{remote}/{branch}" if remote else branch


def _reason(exc: WorkbenchError) -> str:
    return str(exc.message).removeprefix("git fetch: ").removeprefix("fatal: ")


def resolve_target(path: str, *, branch: str | None, experiment: str | None,
                   remote: str | None) -> tuple[Target, str | None]:
    """The branch to follow, checked (refused in one line): (it, why the remote did not answer, if it did not)."""
    repo = GitRepo(path)
    name = repo.check_branch(branch) if branch else repo.current_branch()
    unanswered = None
    if remote is not None:
        remote = repo.normalize_remote(remote)  # a path made absolute: the detached follower fetches the same
        try:
            repo.fetch(remote, name)
        except WorkbenchError as exc:
            unanswered = _reason(exc)
    try:
        name, ref, _ = ci.resolve_branch(repo, name, remote)
    except WorkbenchError:
        if unanswered is None:
            raise
        raise WorkbenchError(f"remote {remote}: {unanswered}",
                             hint="check the remote's name, path or URL and that the branch exists there") from None
    spec = load_spec(repo.path)
    exp = default_experiment(spec, experiment)
    return Target(repo, branch_key(name, remote), name, ref, remote, exp, spec.name), unanswered


def _refuse_if_followed(wb: Services, target: Target) -> None:
    holder = wb.store.live_lease_holder(target.lease)
    if holder is not None:
        pid = owner_pid(holder)
        raise FollowedElsewhere(f"{target.key} of {target.repo.path} is already followed "
                                f"({f'pid {pid}' if pid else holder})",
                                hint=f"`workbench ci stop {target.repo.path} --branch {target.key}` ends it")


class CiFollower:
    """A started follower: `runs` it started, `in_flight` those not ended; `wait` while it follows."""

    def __init__(self, wb: Services, target: Target, say: Callable[[str], None], *, every_commit: bool,
                 fetch_every: float, owner: str, since: str | None, unanswered: str | None,
                 detached: bool = False) -> None:
        self.wb, self.target, self.say, self.detached = wb, target, say, detached
        self.repo, self.branch, self.path = target.repo, target.key, str(target.repo.path)
        self.every_commit, self.fetch_every, self.owner = every_commit, fetch_every, owner
        self.runs: list[str] = []
        self._pending: dict[str, str] = {}  # run id -> sha, until its verdict is said
        self._head = since                  # the head last handled (from the row: before a restart)
        self._unanswered = unanswered
        self._lock = threading.Lock()
        self._look_now = threading.Event()
        self._ended = threading.Event()
        self._said: set[str] = set()
        self.keeper = LeaseKeeper(wb.store, target.lease, owner, LEASE_TTL, LEASE_RENEW)
        self.watcher = FolderWatcher(self.repo.common_dir, lambda _: self._look_now.set(), paths=REFS,
                                     ignore=NOT_REFS, debounce=DEBOUNCE, on_status=say)
        self._threads = [threading.Thread(target=self._guarded, args=(self._look_loop,), daemon=True,
                                          name=f"ci-look-{self.branch}"),
                         threading.Thread(target=self._guarded, args=(self._monitor_loop,), daemon=True,
                                          name=f"ci-runs-{self.branch}")]
        if target.remote is not None:
            self._threads.append(threading.Thread(target=self._guarded, args=(self._fetch_loop,), daemon=True,
                                                  name=f"ci-fetch-{self.branch}"))

    # lifecycle ------------------------------------------------------------------------------------
    def start(self) -> "CiFollower":
        self.watcher.start()
        for thread in self._threads:
            thread.start()
        where = self.repo.top / self.repo.prefix if self.repo.prefix else self.repo.top
        fetching = f"; fetching {self.target.remote} every {self.fetch_every:g}s" if self.target.remote else ""
        self.say(f"following {self.branch} of {where} ({self.watcher.mode}{fetching}): each new commit runs "
                 f"{self.target.project}/{self.target.experiment} from its own tree")
        if self._unanswered:
            self._say_unanswered(self._unanswered)
        return self

    @property
    def in_flight(self) -> list[str]:
        with self._lock:
            return list(self._pending)

    def wait(self, timeout: float) -> bool:
        """True while it follows (after `timeout` seconds); False once it ended (`ci stop`, its lease lost)."""
        return not self._ended.wait(timeout)

    def stop(self) -> None:
        self._ended.set()
        self._look_now.set()
        self.watcher.stop()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=10)
        self.keeper.stop()
        if not self.detached and not self.keeper.lost.is_set() and \
                self.wb.store.lease_holder(self.target.lease) in (None, self.owner):
            # a follower in a terminal that ends (Ctrl-C) leaves the branch not followed (a detached one is
            # wanted until `ci stop`; one that lost its lease leaves the row to the follower that took it)
            self.wb.store.unfollow_branch(self.path, self.branch)
        self.wb.store.release_lease(self.target.lease, self.owner)

    def _end(self, why: str) -> None:
        if not self._ended.is_set():
            self.say(why)
            self._ended.set()
            self._look_now.set()
            self.keeper.stop()  # `ci stop` waits for the lease to go: freed now, not when stop() is called
            self.wb.store.release_lease(self.target.lease, self.owner)

    def _guarded(self, loop: Callable[[], None]) -> None:
        """Each loop goes on through any one failure (said once): a follower outlives a bad moment."""
        while not self._ended.is_set():
            try:
                loop()
                return
            except Exception as exc:  # noqa: BLE001 - said once; the loop starts again
                self._say_once(f"error: {first_line(exc)}", f"{loop.__name__}:{first_line(exc)}")
                self._ended.wait(1.0)

    def _say_once(self, line: str, key: str | None = None) -> None:
        if (key or line) not in self._said:
            self._said.add(key or line)
            self.say(line)

    # the branch moving ----------------------------------------------------------------------------
    def _look_loop(self) -> None:
        try:
            self._catch_up_notes()
        except Exception as exc:  # noqa: BLE001 - notes are a courtesy: the branch is looked at all the same
            self._say_once(f"notes not brought up to date: {first_line(exc)}", "catch-up")
        self._look(first=True)
        while not self._ended.is_set():
            self._look_now.wait(SAFETY_LOOK)
            self._look_now.clear()
            if not self._ended.is_set():
                self._look()

    def _look(self, first: bool = False) -> None:
        try:
            head = self.repo.resolve(self.target.ref)
            if head is None:
                self._say_once(f"{self.branch} does not exist any more; waiting for it to come back", "gone")
                return
            self._said.discard("gone")
            if head == self._head and not first:
                return
            self._run(self._new_commits(self._head, head))
        except WorkbenchError as exc:
            self._say_once(f"git: {exc.message}; still following", f"git:{exc.message}")
            return
        self._head = head
        self.wb.store.set_followed_head(self.path, self.branch, head)

    def _new_commits(self, old: str | None, head: str) -> list[Commit]:
        """The commits of the branch not seen yet, newest first: back to `old` (the head last handled), or to
        the first one already recorded; the head alone at a first start."""
        if old is None or old == head or self.repo.resolve(old) is None:
            chain = self.repo.first_parent(head, limit=1)
        else:
            if self.repo.is_ancestor(head, old):
                self.say(f"{self.branch} moved back to {head[:8]} (from {old[:8]})")
            elif not self.repo.is_ancestor(old, head):
                self.say(f"{self.branch} was rewritten ({old[:8]} is no longer in its history: a force-push or a "
                         f"rebase); the old commits keep their runs, the new head is run")
            chain = self.repo.first_parent(head, stop=old, limit=HISTORY_LIMIT) or self.repo.first_parent(head, limit=1)
        recorded = {r["sha"] for r in self.wb.store.ci_commits(self.path, [c.sha for c in chain],
                                                               self.target.experiment)}
        return list(takewhile(lambda c: c.sha not in recorded, chain))

    def _run(self, commits: list[Commit]) -> None:
        if not commits:
            return
        newest, older = commits[0], commits[1:]
        to_run = commits[::-1] if self.every_commit else [newest]
        trees = self.repo.project_trees(to_run) if self.repo.prefix else {}
        for commit in to_run:
            self._launch(commit, trees.get(commit.sha))
        if older and not self.every_commit:
            record_skipped(self.wb, self.repo, older, self.target.experiment, branch=self.branch,
                           why=f"skipped: {newest.short} came after it in the same burst and was run")
            self.say(f"{len(older)} older commit(s) skipped: {newest.short} came after them in the same burst")

    def _launch(self, commit: Commit, tree: str | None) -> None:
        try:
            run = launch_commit(self.wb, self.repo, commit, self.target.experiment, project=self.target.project,
                                branch=self.branch, tree=tree)
        except WorkbenchError as exc:
            self.say(f"{commit.short} could not be queued ({exc.message}): {commit.subject}")
            return
        with self._lock:
            self.runs.append(run["id"])
            self._pending[run["id"]] = commit.sha
        if run["status"] not in PENDING:
            self.say(f"{commit.short} cannot be run ({run.get('status_reason')}): {commit.subject}")
        else:
            self.say(f"{commit.short} run {run['id']} queued: {commit.subject}")

    # verdicts -------------------------------------------------------------------------------------
    def _monitor_loop(self) -> None:
        looked = 0.0
        while not self._ended.wait(POLL_RUNS):
            if self.keeper.lost.is_set():
                self._end(f"{self.branch} is followed by another follower now")
                return
            if time.monotonic() - looked >= ACTIVE_LOOK:
                looked = time.monotonic()
                wanted = {r["branch"] for r in self.wb.store.followed_branches(self.path, active=True)}
                if self.branch not in wanted:
                    self._end(f"{self.branch} is no longer followed (`ci stop`)")
                    return
            self._verdicts()

    def _verdicts(self) -> None:
        with self._lock:
            pending = dict(self._pending)
        if not pending:
            return
        rows = {r["run_id"]: r for r in self.wb.store.ci_commits(self.path, set(pending.values()),
                                                                  self.target.experiment)}
        for run_id in pending:
            row = rows.get(run_id)
            if row is not None and row.get("run_status") in PENDING:
                continue
            if row is not None:  # else the commit was recorded again meanwhile, with another run
                self.say(self._verdict_line(row))
                write_note(self.wb, self.repo, row)
            with self._lock:
                self._pending.pop(run_id, None)

    def _verdict_line(self, row: dict[str, Any]) -> str:
        """`3f2a91c0 PASS acc=0.964 (+0.012) run 5e0c2b1a: subject`, or FAIL with its reason."""
        checks = run_checks(self.wb, row)
        said = verdict(row)
        values = metric_values(row, checks) if said in ("PASS", "FAIL") else {}
        before = self._previous_values(row["sha"]) if values else {}
        parts = [f"{k}={format_value(v)}" + (f" ({v - before[k]:+.4g})" if k in before else "")
                 for k, v in values.items()]
        failed = [f"{c['metric']} {c['expression']}" for c in checks if not c["passed"]]
        why = "" if said == "PASS" else (f"check failed: {', '.join(failed)}" if failed else row.get("run_reason") or "")
        return (f"{row['sha'][:8]} {said}{' ' + ' '.join(parts) if parts else ''}{f' ({why})' if why else ''} "
                f"run {row['run_id']}: {row['subject']}")

    def _previous_values(self, sha: str) -> dict[str, float]:
        """The values of the newest evaluated commit before `sha` on the branch (a verdict's change)."""
        chain = self.repo.first_parent(sha, limit=DELTA_LOOK)[1:]
        rows = {r["sha"]: r for r in self.wb.store.ci_commits(self.path, [c.sha for c in chain],
                                                               self.target.experiment)}
        for commit in chain:
            row = rows.get(commit.sha)
            if row is not None and verdict(row) in ("PASS", "FAIL"):
                values = metric_values(row, run_checks(self.wb, row))
                if values:
                    return values
        return {}

    def _catch_up_notes(self) -> None:
        """Notes of this branch's recorded commits whose runs ended while no follower ran."""
        head = self.repo.resolve(self.target.ref)
        if head is None:
            return
        chain = self.repo.first_parent(head, limit=NOTES_CATCH_UP)
        rows = [r for r in self.wb.store.ci_commits(self.path, [c.sha for c in chain], self.target.experiment)
                if r["state"] == "run" and r.get("run_status") not in (None, *PENDING)]
        if not rows:
            return
        notes = self.repo.notes(head, NOTES_CATCH_UP)
        for row in rows:
            if notes.get(row["sha"]) != note_text(row, run_checks(self.wb, row)):
                write_note(self.wb, self.repo, row)

    # the remote -----------------------------------------------------------------------------------
    def _fetch_loop(self) -> None:
        remote = self.target.remote
        assert remote is not None
        while not self._ended.wait(self.fetch_every):
            try:
                self.repo.fetch(remote, self.target.name)
            except WorkbenchError as exc:
                if self._unanswered is None:
                    self._say_unanswered(_reason(exc))
                self._unanswered = _reason(exc)
                continue
            if self._unanswered is not None:
                self.say(f"remote {remote} answers again")
                self._unanswered = None
            self._look_now.set()  # the watcher sees the ref move too; this is sooner when it did

    def _say_unanswered(self, reason: str) -> None:
        self.say(f"remote {self.target.remote} does not answer ({reason}); retrying every {self.fetch_every:g}s")


# starting and stopping ------------------------------------------------------------------------------
def _take_lease(wb: Services, lease: str, owner: str, key: str, project_path: str) -> None:
    if not wb.store.acquire_lease(lease, owner, LEASE_TTL):
        holder = wb.store.live_lease_holder(lease)  # one that was killed is freed here ...
        if not wb.store.acquire_lease(lease, owner, LEASE_TTL):  # ... and its lease taken now
            pid = owner_pid(holder) if holder else None
            raise FollowedElsewhere(f"{key} of {project_path} is already followed"
                                    f"{f' (pid {pid})' if pid else (f' ({holder})' if holder else '')}",
                                    hint=f"`workbench ci stop {project_path} --branch {key}` ends it")


def follow(wb: Services, path: str, say: Callable[[str], None], *, branch: str | None = None,
           experiment: str | None = None, remote: str | None = None, every_commit: bool = False,
           fetch_every: float = 60.0, detached: bool = False, owner: str | None = None) -> CiFollower:
    """Follows a branch from this process until stopped; `say` gets a line per commit and verdict. `owner`:
    the branch's lease, already held (a detached follower takes it before anything slow)."""
    if fetch_every <= 0:
        raise WorkbenchError(f"--fetch-every must be more than 0 seconds (got {fetch_every:g})")
    target, unanswered = resolve_target(path, branch=branch, experiment=experiment, remote=remote)
    if owner is None:
        owner = new_owner()
        _take_lease(wb, target.lease, owner, target.key, str(target.repo.path))
    row = next((r for r in wb.store.followed_branches(str(target.repo.path)) if r["branch"] == target.key), None)
    if not detached:
        options = {"branch": target.name, "every_commit": every_commit, "fetch_every": fetch_every}
        wb.store.follow_branch(str(target.repo.path), target.key, target.experiment, remote=remote,
                               options=options, detached=False)
    elif row is None or not row["active"]:  # `ci stop` came while it started: it never re-marks it wanted
        wb.store.release_lease(target.lease, owner)
        raise FollowedElsewhere(f"{target.key} of {target.repo.path} is no longer followed")
    since = row.get("head") if row and row.get("experiment") == target.experiment else None
    return CiFollower(wb, target, say, every_commit=every_commit, fetch_every=fetch_every, owner=owner,
                      since=since, unanswered=unanswered, detached=detached).start()


def start_detached(wb: Services, path: str, *, branch: str | None = None, experiment: str | None = None,
                   remote: str | None = None, every_commit: bool = False, fetch_every: float = 60.0) -> dict[str, Any]:
    """Follows a branch from a detached process (checked here first: one-line errors); its row, with its pid."""
    if fetch_every <= 0:
        raise WorkbenchError(f"--fetch-every must be more than 0 seconds (got {fetch_every:g})")
    target, _ = resolve_target(path, branch=branch, experiment=experiment, remote=remote)
    _refuse_if_followed(wb, target)
    project_path = str(target.repo.path)
    wb.store.follow_branch(project_path, target.key, target.experiment, remote=remote, detached=True,
                           options={"branch": target.name, "every_commit": every_commit, "fetch_every": fetch_every})
    errors = wb.dirs.data / "ci-follow.err"
    before = errors.stat().st_size if errors.exists() else 0
    wb.store.acquire_lease(_start_lease(project_path, target.key), new_owner(), RESTART_EVERY)  # none beside it
    start_process(wb, ["_ci_follow", project_path, target.key], errors)
    deadline = time.monotonic() + DETACH_WAIT
    while not wb.store.live_lease_holder(target.lease):
        if time.monotonic() > deadline:
            wb.store.unfollow_branch(project_path, target.key)
            raise WorkbenchError(f"the follower of {target.key} did not start: {_last_line(errors, before)}",
                                 hint=f"see {errors}")
        time.sleep(0.05)
    return next(r for r in ci.followed(wb, project_path) if r["branch"] == target.key)


def _last_line(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            lines = [ln.strip() for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no reason given"
    return lines[-1].removeprefix("workbench: error: ") if lines else "no reason given"


def log_path(wb: Services, project_path: str, key: str) -> Path:
    return wb.dirs.data / "ci-follow" / f"{remote_slug(project_path)}--{remote_slug(key)}.log"


def _log_writer(path: Path) -> Callable[[str], None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def write(line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with lock, open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")
    return write


def follow_detached(wb: Services, path: str, key: str) -> None:
    """The detached follower's body: follows as its row says until `ci stop` marks it inactive, or SIGTERM."""
    row = next((r for r in wb.store.followed_branches(path, active=True) if r["branch"] == key), None)
    if row is None:
        return  # stopped meanwhile
    say = _log_writer(log_path(wb, path, key))
    wb.progress = say  # the services' lines (a snapshot taken, a run queued) go to the same log
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    options = row["options"]
    owner = new_owner()
    try:
        # the lease first, before any fetch: `ci watch --detach` waits for it, and no second one starts
        _take_lease(wb, ci.follow_lease(path, key), owner, key, path)
        follower = follow(wb, path, say, branch=options.get("branch"), experiment=row["experiment"],
                          remote=row["remote"], every_commit=bool(options.get("every_commit")),
                          fetch_every=float(options.get("fetch_every") or 60.0), detached=True, owner=owner)
    except FollowedElsewhere as exc:
        say(f"not started: {exc.message}")
        return
    except WorkbenchError as exc:
        wb.store.release_lease(ci.follow_lease(path, key), owner)
        say(f"cannot follow: {exc} (tried again in {RESTART_EVERY:g}s at the earliest)")
        raise
    wb.store.forget_start_attempt(_start_lease(path, key))  # started well: if it dies, it is restarted at once
    try:
        while follower.wait(0.5) and not terminated.is_set():
            pass
    finally:
        follower.stop()
        say(f"follower of {key} ended ({len(follower.runs)} run(s) started)")


def stop(wb: Services, path: str, branch: str | None = None) -> list[dict[str, Any]]:
    """Stops following `branch` (every branch of the project when None): its row inactive, its follower ended."""
    project_path = str(project_folder(path))
    rows = [r for r in wb.store.followed_branches(project_path, active=True) if branch in (None, r["branch"])]
    if not rows:
        what = f"branch {branch!r} of {project_path} is" if branch else f"no branch of {project_path} is"
        raise WorkbenchError(f"{what} not followed" if branch else f"{what} followed",
                             hint=f"`workbench ci watch {project_path}` follows one")
    wb.store.unfollow_branch(project_path, branch)
    leases = [ci.follow_lease(project_path, r["branch"]) for r in rows]
    for row, lease in zip(rows, leases):
        holder = wb.store.live_lease_holder(lease)
        pid = owner_pid(holder) if holder else None
        if pid and pid != os.getpid() and row["detached"]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_WAIT  # a foreground follower sees its row inactive within ACTIVE_LOOK
    while any(wb.store.live_lease_holder(lease) for lease in leases) and time.monotonic() < deadline:
        time.sleep(0.05)
    keys = {r["branch"] for r in rows}
    return [r for r in ci.followed(wb, project_path) if r["branch"] in keys]


def ensure_followers(wb: Services) -> list[str]:
    """Starts again each detached follower whose process is gone (a reboot, a kill -9); what to say."""
    notes = []
    for row in wb.store.followed_branches(active=True):
        if not row["detached"] or wb.store.live_lease_holder(ci.follow_lease(row["project_path"], row["branch"])):
            continue
        if not Path(row["project_path"]).is_dir():
            notes.append(f"{row['project_path']} is gone: its branch {row['branch']} is not followed "
                         f"(`workbench ci stop {row['project_path']}` forgets it)")
            continue
        if not wb.store.acquire_lease(_start_lease(row["project_path"], row["branch"]), new_owner(), RESTART_EVERY):
            continue  # one was started less than RESTART_EVERY ago: starting, or failing (its log says why)
        start_process(wb, ["_ci_follow", row["project_path"], row["branch"]], wb.dirs.data / "ci-follow.err")
        notes.append(f"following {row['branch']} of {row['project_path']} again (its follower had stopped)")
    return notes


def _start_lease(project_path: str, key: str) -> str:
    """Taken for RESTART_EVERY seconds by each start of a detached follower, cleared by one that started well:
    a follower that cannot start (a deleted branch, a broken spec) is tried again once a minute, not by every
    command, and one that started well and then died is started again by the next command."""
    return f"ci-start:{project_path}:{key}"
