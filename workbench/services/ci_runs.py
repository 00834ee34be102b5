"""A commit as a run, and what its run says about it.

A commit's run is built from that commit's tree, never the work tree: the tree is written out (git_repo.export)
into the data dir, its workbench.toml read from there, snapshotted, and queued like any run (the dispatcher
places it on a free GPU anywhere), recorded with the commit's SHA. A commit whose spec cannot be read is
recorded as a failed run with the spec's error. Its verdict is read from its run each time (never copied)."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.projects.git_repo import Commit, GitRepo, remove_export
from workbench.projects.spec import Experiment, ProjectSpec, load_spec
from workbench.services.context import Services
from workbench.services.launch import check_priority, enqueue, new_record, warn_literal_secrets
from workbench.services.notebook_checks import check_notebook

SKIP_EXIT = 125  # as `git bisect run`: a run that exits 125 cannot judge its commit
QUEUED_REASON = "waiting for a machine (CI run of commit {short})"
PENDING = ("queued", "running")


def default_experiment(spec: ProjectSpec, experiment: str | None) -> str:
    """`-e`, else the [watch] table's experiment, else the only one."""
    if experiment is not None:
        return spec.experiment(experiment).name
    if spec.watch is not None:
        return spec.watch.run
    return spec.experiment(None).name


def launch_commit(wb: Services, repo: GitRepo, commit: Commit, experiment: str, *, project: str,
                  branch: str | None, tree: str | None = None, priority: int = 0) -> dict[str, Any]:
    """Queues a run of `experiment` built from `commit`'s tree and records it as that commit's run; a commit
    whose spec cannot be read gets a failed run saying why. The run's record."""
    check_priority(priority)
    tree = tree or commit.tree
    export = exports_dir(wb) / f"tree-{os.getpid()}-{commit.sha[:12]}-{secrets.token_hex(3)}"
    try:
        try:
            folder = repo.export(commit.sha, export)
        except WorkbenchError as exc:  # the project's folder is not in that commit (or git failed)
            return record_unrunnable(wb, repo, commit, experiment, project=project, branch=branch, tree=tree,
                                     reason=f"cannot write out commit {commit.short}: {exc.message}")
        try:
            spec = load_spec(folder)
            exp = spec.experiment(experiment)
            check_notebook(spec.root, exp)
        except WorkbenchError as exc:
            where = f"{commit.short}:{repo.prefix + '/' if repo.prefix else ''}"
            reason = str(exc.message).replace(f"{folder}/", where).replace(str(folder), where.rstrip(":/"))
            return record_unrunnable(wb, repo, commit, experiment, project=project, branch=branch, tree=tree,
                                     reason=reason)
        # Recorded under the project's own folder, and named as the project is (a spec without a name takes
        # its folder's: the project's, not the written-out tree's)
        real = dataclasses.replace(spec, root=repo.path, name=repo.path.name if spec.name == folder.name else spec.name)
        warn_literal_secrets(wb, real, exp)
        requested: str | list[str] = exp.machines or exp.machine or "auto"
        request = {"machines": requested, "gpus": exp.gpus, "executor": None}
        git = {"git_commit": commit.sha, "git_dirty": 0, "git_diff": None}
        run = enqueue(wb, real, exp, dict(exp.params), request, QUEUED_REASON.format(short=commit.short), priority,
                      source=spec.root, git=git)
    finally:
        remove_export(export)
    wb.store.add_event(run["id"], "ci", f"commit {commit.short} {commit.subject[:120]}"
                                        f"{f' on {branch}' if branch else ''}")
    wb.store.record_ci_commit(str(repo.path), experiment, commit.record() | {"tree": tree}, "run", branch=branch,
                              run_id=run["id"])
    return run


def exports_dir(wb: Services) -> Path:
    """Where commits' trees are written out: a folder per machine (a data dir on a shared file system is
    cleaned by each machine of its own launches only)."""
    return wb.dirs.data / "ci" / socket.gethostname()


def remove_stale_exports(folder: Path) -> int:
    """Removes the written-out trees of launches that were killed before removing theirs (`gc`); how many."""
    removed = 0
    for entry in folder.glob("tree-*") if folder.is_dir() else []:
        pid = entry.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_unrunnable(wb: Services, repo: GitRepo, commit: Commit, experiment: str, *, project: str,
                      branch: str | None, tree: str, reason: str) -> dict[str, Any]:
    """A failed run for a commit that cannot be run at all (its spec is broken, its experiment is gone)."""
    spec = ProjectSpec(name=project, root=repo.path, exclude=[], experiments={})
    exp = Experiment(name=experiment, command=[])
    record, _ = new_record(wb, spec, exp, {}, machine="local", executor_name="none", rerun_of=None, priority=0,
                           with_git=False, git={"git_commit": commit.sha, "git_dirty": 0, "git_diff": None})
    record.pop("notes", None)
    now = time.time()
    record.update(status="failed", status_reason=reason, finished_at=now)
    wb.store.insert_run(record)
    wb.store.add_event(record["id"], "ci", f"commit {commit.short} {commit.subject[:120]}: {reason}"[:500])
    wb.store.record_ci_commit(str(repo.path), experiment, commit.record() | {"tree": tree}, "run", branch=branch,
                              run_id=record["id"], reason=reason)
    wb.progress(f"commit {commit.short} cannot be run: {reason}")
    return wb.store.get_run(record["id"])


def record_skipped(wb: Services, repo: GitRepo, commits: list[Commit], experiment: str, *, branch: str | None,
                   why: str) -> None:
    """Commits not run (a newer one of the same burst was); one that already has a run keeps it."""
    trees = repo.project_trees(commits)
    for commit in commits:
        wb.store.record_ci_commit(str(repo.path), experiment, commit.record() | {"tree": trees[commit.sha]},
                                  "skipped", branch=branch, reason=why)


# verdicts ----------------------------------------------------------------------------------------------
def verdict(row: dict[str, Any] | None) -> str:
    """What `ci list` shows for a commit: PASS, FAIL, running, queued, skipped, cancelled, lost, or not
    evaluated (never seen, or its run removed)."""
    if row is None:
        return "not evaluated"
    if row["state"] == "skipped":
        return "skipped"
    status = row.get("run_status")
    if status is None:
        return "not evaluated"
    if status in PENDING:
        return status
    if status == "succeeded":
        return "FAIL" if row.get("run_verdict") == "fail" else "PASS"
    if status == "failed":
        return "SKIP" if row.get("run_exit_code") == SKIP_EXIT else "FAIL"
    return status  # cancelled, lost


def bisect_outcome(row: dict[str, Any], checks: list[dict[str, Any]], check: str | None = None) -> str | None:
    """good, bad or skip for `git bisect`, or None while its run is still to come. A run that never started
    (its spec broken, its image did not build, it could not be placed), was cancelled or lost, or exited
    125 cannot judge its commit: skip."""
    status = row.get("run_status")
    if status in PENDING:
        return None
    if status is None or status in ("cancelled", "lost") or row.get("run_exit_code") == SKIP_EXIT:
        return "skip"
    if status == "failed" and not row.get("run_started_at"):
        return "skip"
    if status != "succeeded":
        return "bad"
    if check is not None:
        mine = [c for c in checks if c["metric"] == check]
        return "good" if mine and all(c["passed"] for c in mine) else "bad"
    return "bad" if row.get("run_verdict") == "fail" else "good"


def metric_values(row: dict[str, Any], checks: list[dict[str, Any]]) -> dict[str, float]:
    """The values a verdict rests on: the checks' metrics, else the run's summary (first four)."""
    if checks:
        return {c["metric"]: c["value"] for c in checks if c["value"] is not None}
    summary = row.get("run_summary") or {}
    return {k: v for k, v in list(summary.items())[:4] if isinstance(v, (int, float)) and not isinstance(v, bool)}


def directions(checks: list[dict[str, Any]]) -> dict[str, str]:
    """Which way each checked metric gets better: "higher" (a `>`/`>=` check) or "lower" (`<`/`<=`)."""
    found = {}
    for check in checks:
        op = re.search(r"(>=|<=|==|>|<)", check.get("expression") or "")
        if op and op[1] != "==":
            found[check["metric"]] = "higher" if op[1].startswith(">") else "lower"
    return found


def format_value(value: float) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.4g}"


def note_text(row: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    """The git note of a commit's ended run: `workbench: PASS acc=0.964 (run 5e0c2b1a)`."""
    values = " ".join([f"{k}={format_value(v)}" for k, v in metric_values(row, checks).items()]
                      + [f"{c['metric']}=missing" for c in checks if c["value"] is None])
    reason = "" if values or verdict(row) == "PASS" else f" {(row.get('run_reason') or '')[:120]}"
    return f"workbench: {verdict(row)}{' ' + values if values else reason.rstrip()} (run {row['run_id']})"


def run_checks(wb: Services, row: dict[str, Any]) -> list[dict[str, Any]]:
    return wb.store.checks(row["run_seq"]) if row.get("run_seq") is not None else []


def write_note(wb: Services, repo: GitRepo, row: dict[str, Any]) -> str | None:
    """Writes the note of a commit's ended run; the text written, or None when git refused (said)."""
    text = note_text(row, run_checks(wb, row))
    try:
        repo.write_note(row["sha"], text)
    except WorkbenchError as exc:
        wb.progress(f"could not write the git note of {row['sha'][:8]}: {exc.message}")
        return None
    return text


def project_folder(path: str) -> Path:
    return Path(path).expanduser().resolve()
