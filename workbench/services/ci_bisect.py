"""`ci bisect`: the first commit whose checks fail, with git bisect's semantics on the first-parent chain from
GOOD (taken as good) to BAD (taken as bad).

Verdicts already recorded for a commit, or for any commit with the same project tree, are used without a new
run; a run of a commit still going is waited for, not started again. Each round tries k commits spread evenly
inside the open range (k = --parallel, else the free GPU slots that fit the experiment): they are queued at
once and land on free machines, and the range narrows to the last good and the first bad. A commit that
cannot judge (its run never started, exited 125, was cancelled or lost) is a skip: the next probe is taken
beside it, and when only skipped commits are left between, the answer is that range."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.projects.checks import Check, evaluate
from workbench.projects.git_repo import Commit, GitRepo
from workbench.projects.spec import Experiment, load_spec
from workbench.services import placement as place
from workbench.services.answers import BisectResult, BisectStep
from workbench.services.ci_runs import (SKIP_EXIT, bisect_outcome, default_experiment, format_value, launch_commit,
                                        metric_values, run_checks, write_note)
from workbench.services.context import Services

POLL = 0.3  # how often the runs waited for are looked at (one small query)


@dataclass
class Judged:
    outcome: str          # good, bad, skip
    row: dict[str, Any]   # the commit's run, as ci_commits joins it
    checks: list[dict[str, Any]]
    reused: bool
    round: int


def bisect(wb: Services, path: str, good: str, bad: str, say: Callable[[str], None], *,
           experiment: str | None = None, check: str | None = None, parallel: int | None = None) -> BisectResult:
    if parallel is not None and parallel < 1:
        raise WorkbenchError(f"--parallel must be at least 1 (got {parallel})")
    repo = GitRepo(path)
    good_sha, bad_sha = _sha(repo, good, "GOOD"), _sha(repo, bad, "BAD")
    if good_sha == bad_sha:
        raise WorkbenchError(f"GOOD and BAD are the same commit ({good_sha[:8]})",
                             hint="name the last commit known good and a later one known bad")
    if not repo.is_ancestor(good_sha, bad_sha):
        raise WorkbenchError(f"GOOD {good} ({good_sha[:8]}) is not an ancestor of BAD {bad} ({bad_sha[:8]})",
                             hint="GOOD must be an older commit of BAD's history")
    spec = load_spec(repo.path)
    exp = spec.experiment(default_experiment(spec, experiment))
    if check is not None and check not in (names := [c.metric for c in exp.checks]):
        raise WorkbenchError(f"experiment {exp.name} has no check on {check!r}",
                             hint=f"its checks: {', '.join(names)}" if names else "it declares no checks")
    chain = list(reversed(repo.first_parent(bad_sha, stop=good_sha)))
    k = parallel or free_slots(wb, exp)
    rule = next((c for c in exp.checks if c.metric == check), None)
    search = Bisection(wb, repo, chain, exp.name, rule, say, project=spec.name)
    say(f"bisecting {len(chain)} commit(s) of {exp.name} after {good_sha[:8]} up to {bad_sha[:8]} "
        f"({f'check {check}' if check else 'all checks'}), {k} at a time")
    search.run(k)
    return search.result(good_sha, bad_sha, k)


def _sha(repo: GitRepo, ref: str, role: str) -> str:
    sha = repo.resolve(ref)
    if sha is None:
        raise WorkbenchError(f"{role} {ref!r} is not a commit of {repo.top}", hint="`git log --oneline` lists them")
    return sha


def free_slots(wb: Services, exp: Experiment) -> int:
    """Runs of `exp` that fit at once on its machines' free GPUs now (1 for a CPU experiment)."""
    if not exp.gpus:
        return 1
    machines = place.known_candidates(wb, exp.machines or exp.machine or "auto")
    surveys = place.survey_all(wb, machines, exp.gpus, None)
    return max(1, sum(len(s.free) // exp.gpus for s in surveys if s.error is None))


class Bisection:
    def __init__(self, wb: Services, repo: GitRepo, chain: list[Commit], experiment: str, rule: Check | None,
                 say: Callable[[str], None], *, project: str) -> None:
        self.wb, self.repo, self.chain, self.experiment, self.say = wb, repo, chain, experiment, say
        self.rule, self.check = rule, rule.metric if rule else None
        self.project = project
        self.key = str(repo.path)
        self.trees = repo.project_trees(chain)
        self.judged: dict[int, Judged] = {}
        self.by_tree: dict[str, Judged] = {}  # a project tree judged good or bad
        self.pending: dict[int, str] = {}   # index -> its run going now (this bisect's, or found going)
        self.started: set[str] = set()     # runs this bisect queued
        self.order: list[int] = []         # indices in the order they were judged
        self.rounds = 0

    # the range --------------------------------------------------------------------------------------
    def bounds(self) -> tuple[int, int]:
        """(last good, first bad) as indices of the chain; -1 is GOOD, the last index BAD."""
        hi = min((i for i, j in self.judged.items() if j.outcome == "bad"), default=len(self.chain) - 1)
        lo = max((i for i, j in self.judged.items() if j.outcome == "good" and i < hi), default=-1)
        return lo, hi

    def run(self, k: int) -> None:
        self._recall()
        try:
            while self._round(k):
                pass
        except KeyboardInterrupt:
            going = sorted(set(self.pending.values()))
            self.say(f"bisect interrupted: run(s) {', '.join(going)} keep going; the next `ci bisect` of this "
                     f"range uses their verdicts" if going else "bisect interrupted")
            raise

    def _round(self, k: int) -> bool:
        """Tries the next commits and waits for their outcomes; False once the range cannot narrow further."""
        lo, hi = self.bounds()
        waiting = [i for i in self.pending if lo < i < hi]
        fresh = [i for i in range(lo + 1, hi) if i not in self.judged and i not in self.pending]
        if same := [i for i in fresh if self.tree_of(i) in self.by_tree]:
            for i in same:  # the same files as a commit judged since: the same verdict
                self._judge(i, dataclasses.replace(self.by_tree[self.tree_of(i)], reused=True, round=self.rounds))
            return True
        picks = spread(fresh, lo, hi, max(0, k - len(waiting)))
        if not picks and not waiting:
            return False
        self.rounds += 1
        going = f" ({len(waiting)} of them already running)" if waiting else ""
        tried = ", ".join(self.chain[i].short for i in sorted([*waiting, *picks]))
        self.say(f"round {self.rounds}: trying {len(picks) + len(waiting)} commit(s) in a range of {hi - lo}: "
                 f"{tried}{going}")
        for i in picks:
            if twin := next((j for j in self.pending if self.tree_of(j) == self.tree_of(i)), None):
                self.pending[i] = self.pending[twin]  # the same files are being run already
                continue
            run = launch_commit(self.wb, self.repo, self.chain[i], self.experiment, project=self.project,
                                branch=None, tree=self.tree_of(i))
            self.pending[i] = run["id"]
            self.started.add(run["id"])
        self._await(sorted([*waiting, *picks]))
        return True

    def _recall(self) -> None:
        """What is recorded already for the chain's commits (BAD aside), by commit or by tree: an ended run's
        outcome is used as it is (one cancelled or lost is not: its commit is run again); a run still going is
        waited for when its commit is tried."""
        candidates = self.chain[:-1]
        if not candidates:
            return
        rows = self.wb.store.ci_commits(self.key, [c.sha for c in candidates], self.experiment)
        rows += self.wb.store.ci_runs_of_trees(self.key, self.experiment, {self.trees[c.sha] for c in candidates})
        # a run cancelled or lost said nothing about its commit: that commit is run again, not skipped
        rows = [r for r in rows if r.get("run_status") not in (None, "cancelled", "lost")]
        by_sha: dict[str, list[dict[str, Any]]] = {}
        by_tree: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(rows, key=lambda r: -(r.get("run_seq") or 0)):
            by_sha.setdefault(row["sha"], []).append(row)
            by_tree.setdefault(row["tree"], []).append(row)
        for i, commit in enumerate(candidates):
            mine = {r["run_id"]: r for r in by_sha.get(commit.sha, []) + by_tree.get(self.trees[commit.sha], [])}
            self._take_recorded(i, sorted(mine.values(), key=lambda r: -(r.get("run_seq") or 0)))

    def _take_recorded(self, index: int, rows: list[dict[str, Any]]) -> None:
        """The best of a commit's recorded runs (newest first): a good or bad outcome, else a run going,
        else a skip."""
        ended = []
        for row in rows:
            checks = self.checks_of(row)
            outcome = bisect_outcome(row, checks, self.check)
            if outcome is None:
                self.pending.setdefault(index, row["run_id"])
            else:
                ended.append(Judged(outcome, row, checks, reused=True, round=0))
        decisive = [j for j in ended if j.outcome != "skip"]
        if decisive:
            self.pending.pop(index, None)
            self._judge(index, decisive[0])
        elif ended and index not in self.pending:
            self._judge(index, ended[0])

    def _await(self, indices: list[int]) -> None:
        """Until each of these commits' runs has ended: each said as it ends."""
        left = {i: self.pending[i] for i in indices}
        while left:
            states = self.wb.store.ci_run_states(left.values())
            for i, run_id in list(left.items()):
                row = states.get(run_id)
                if row is None:  # the run was removed meanwhile: it cannot judge
                    row = {"run_id": run_id, "run_status": None}
                row |= {"sha": self.chain[i].sha, "state": "run"}
                checks = self.checks_of(row)
                outcome = bisect_outcome(row, checks, self.check)
                if outcome is None:
                    continue
                del left[i], self.pending[i]
                self._judge(i, Judged(outcome, row, checks, reused=run_id not in self.started, round=self.rounds))
                if run_id in self.started and row.get("run_status") is not None:
                    write_note(self.wb, self.repo, row)
            if left:
                time.sleep(POLL)

    def checks_of(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The run's checks; with --check, that check as the work tree declares it when the commit's spec did
        not declare it yet (else an older commit could never be good by it)."""
        checks = run_checks(self.wb, row)
        if self.rule is None or row.get("run_status") != "succeeded" or any(
                c["metric"] == self.rule.metric for c in checks):
            return checks
        seq = row["run_seq"]
        return checks + evaluate([self.rule], lambda metric: [v for _, v in self.wb.store.metric_history(seq, metric)])

    def tree_of(self, index: int) -> str:
        return self.trees[self.chain[index].sha]

    def _judge(self, index: int, judged: Judged) -> None:
        self.judged[index] = judged
        if judged.outcome != "skip":
            self.by_tree.setdefault(self.tree_of(index), judged)
        self.order.append(index)
        commit = self.chain[index]
        detail = " ".join(f"{k}={format_value(v)}" for k, v in self.values(judged).items()) or "-"
        if judged.outcome == "skip":
            detail = f"cannot judge it: {skip_reason(judged.row)}"
        reused = ", reused" if judged.reused else ""
        self.say(f"{commit.short} {judged.outcome:<4} {detail} (run {judged.row['run_id']}{reused}) "
                 f"{commit.subject[:80]}")

    def values(self, judged: Judged) -> dict[str, float]:
        values = metric_values(judged.row, judged.checks)
        return {k: v for k, v in values.items() if k == self.check} if self.check else values

    # the answer -------------------------------------------------------------------------------------
    def result(self, good: str, bad: str, k: int) -> BisectResult:
        lo, hi = self.bounds()
        skipped = [self.chain[i].sha for i in range(lo + 1, hi) if self.judged[i].outcome == "skip"]
        answer = self.chain[hi]
        steps = [self.step(i) for i in self.order]
        judged = f"check {self.check}" if self.check else "all checks"
        if skipped:
            unresolved = [*skipped, answer.sha]
            said = (f"bisect {good[:8]}..{bad[:8]} ({judged}): first bad commit is one of "
                    f"{', '.join(s[:8] for s in unresolved)} ({len(skipped)} skipped)")
        else:
            unresolved = []
            said = f"bisect {good[:8]}..{bad[:8]} ({judged}): first bad commit {answer.short} {answer.subject[:120]}"
        for run_id in sorted({s.run_id for s in steps if s.run_id}):
            self.wb.store.add_event(run_id, "bisect", said)
        return BisectResult(good=good, bad=bad, experiment=self.experiment, check=self.check, steps=steps,
                            first_bad=None if skipped else answer.sha,
                            first_bad_subject=None if skipped else answer.subject, unresolved=unresolved,
                            runs=len(self.started), rounds=self.rounds, parallel=k)

    def step(self, index: int) -> BisectStep:
        judged, commit = self.judged[index], self.chain[index]
        return BisectStep(sha=commit.sha, subject=commit.subject, outcome=judged.outcome,
                          run_id=judged.row["run_id"], reused=judged.reused, values=self.values(judged),
                          reason=skip_reason(judged.row) if judged.outcome == "skip" else None, round=judged.round)


def spread(fresh: list[int], lo: int, hi: int, n: int) -> list[int]:
    """`n` of the untried indices `fresh`, spread evenly inside (lo, hi): each the nearest to its point of
    an even split (the lower on a tie), so a skipped commit's probe lands beside it."""
    if n >= len(fresh):
        return list(fresh)
    picks: list[int] = []
    for j in range(1, n + 1):
        target = lo + (hi - lo) * j / (n + 1)
        picks.append(min((i for i in fresh if i not in picks), key=lambda i: (abs(i - target), i)))
    return sorted(picks)


def skip_reason(row: dict[str, Any]) -> str:
    if row.get("run_exit_code") == SKIP_EXIT:
        return f"exit {SKIP_EXIT}"
    status = row.get("run_status")
    if status is None:
        return "its run was removed"
    if status in ("cancelled", "lost"):
        return f"its run was {status}"
    return (row.get("run_reason") or status or "never started").splitlines()[0][:160]
