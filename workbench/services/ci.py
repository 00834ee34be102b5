"""CI on commits, what is read: a branch's commits with their verdicts and deltas (`ci list`, the Projects
screen), and the branches followed (the Dashboard). The follower is services/ci_follow.py, bisect
services/ci_bisect.py, a commit as a run services/ci_runs.py."""

from __future__ import annotations

from typing import Any

from workbench.errors import WorkbenchError
from workbench.projects.git_repo import GitRepo
from workbench.projects.spec import load_spec
from workbench.services.ci_runs import default_experiment, directions, metric_values, run_checks, verdict
from workbench.services.context import Services
from workbench.store.leases import owner_pid

LIST_LIMIT = 50
FOLLOW_LEASE = "ci:{path}:{branch}"


def follow_lease(project_path: str, branch: str) -> str:
    return FOLLOW_LEASE.format(path=project_path, branch=branch)


def resolve_branch(repo: GitRepo, branch: str | None, remote: str | None = None) -> tuple[str, str, str]:
    """(branch, the full ref followed, its head) for `--branch` (default: the current one), refused in one
    line when the branch does not exist."""
    name = repo.check_branch(branch) if branch else repo.current_branch()
    remote = repo.normalize_remote(remote) if remote is not None else None
    ref = repo.branch_ref(name, remote)
    head = repo.resolve(ref)
    if head is None:
        where = f"remote {remote}" if remote else str(repo.top)
        raise WorkbenchError(f"{where} has no branch {name!r}",
                             hint="`git branch -a` lists them" if not remote else "fetch it, or name another branch")
    return name, ref, head


def experiment_of(path: str, experiment: str | None) -> str:
    """`-e`, else the project's [watch] run or only experiment, as the work tree's workbench.toml says."""
    return default_experiment(load_spec(path), experiment)


def list_commits(wb: Services, path: str, *, branch: str | None = None, experiment: str | None = None,
                 remote: str | None = None, limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """The branch's newest `limit` commits (first parents), newest first, each with its verdict, the values
    it rests on and their change against the previous (older) evaluated commit, and its run."""
    repo = GitRepo(path)
    _, _, head = resolve_branch(repo, branch, remote)
    if experiment is None:
        try:
            experiment = experiment_of(path, None)
        except WorkbenchError:
            experiment = None  # the work tree's spec is broken now: every experiment recorded
    commits = repo.first_parent(head, limit=limit)
    rows: dict[str, dict[str, Any]] = {}
    for row in wb.store.ci_commits(str(repo.path), [c.sha for c in commits], experiment):
        kept = rows.get(row["sha"])
        if kept is None or (row.get("run_seq") or 0) > (kept.get("run_seq") or 0):
            rows[row["sha"]] = row
    listed: list[dict[str, Any]] = []
    previous: dict[str, float] = {}
    for commit in reversed(commits):  # oldest first: each delta is against the older evaluated commit
        row = rows.get(commit.sha)
        said = verdict(row)
        checks = run_checks(wb, row) if row and said in ("PASS", "FAIL") else []
        values = metric_values(row, checks) if row and said in ("PASS", "FAIL") else {}
        deltas = {k: v - previous[k] for k, v in values.items() if k in previous}
        if values:
            previous = values
        listed.append({"sha": commit.sha, "subject": commit.subject, "author": commit.author,
                       "committed_at": commit.committed_at, "verdict": said, "run_id": row and row.get("run_id"),
                       "metrics": values, "deltas": deltas, "better": directions(checks), "reason": row and (row.get("reason") or row.get("run_reason")),
                       "experiment": row and row.get("experiment") or experiment})
    return listed[::-1]


def followed(wb: Services, path: str | None = None) -> list[dict[str, Any]]:
    """The branches followed (or wanted followed), each with its follower's pid while one holds it and its
    newest recorded commit's verdict."""
    out = []
    for row in wb.store.followed_branches(path):
        holder = wb.store.live_lease_holder(follow_lease(row["project_path"], row["branch"]))
        last = wb.store.last_ci_run(row["project_path"], row["experiment"], row["branch"])
        out.append({**row, "detached": bool(row["detached"]), "active": bool(row["active"]),
                    "pid": owner_pid(holder) if holder else None,
                    "last_verdict": verdict(last) if last else None, "last_sha": last and last["sha"],
                    "last_run": last and last.get("run_id")})
    return out
