"""`workbench ci bisect`: the first commit whose checks fail, found on a real git repository with real runs
(busybox on the Docker engine); verdicts recorded for a commit or its tree are reused; commits that cannot
judge are skipped; k commits are tried at once with --parallel."""

from __future__ import annotations

import math

import pytest

from git_projects import GitProject
from helpers import assert_one_line_error, wait_for

pytestmark = pytest.mark.usefixtures("docker_client")

TWO_CHECKS = """[project]
name = "ciproj"

[experiments.train]
image = "busybox:latest"
command = ["sh", "train.sh"]
checks = { acc = ">= 0.9", loss = "<= 0.5" }
"""
TRAIN_TWO = """#!/bin/sh
echo "{\\"step\\": 1, \\"acc\\": $(cat acc.txt), \\"loss\\": $(cat loss.txt)}" >> "$WORKBENCH_METRICS"
"""


def history(project: GitProject, accs: list[float | str | None], start: int = 1) -> list[str]:
    """The head (GOOD, at first) and a commit per value (None: an empty commit, its tree its parent's), named
    c<start>, c<start + 1>...; the shas, the head first."""
    shas = [project.head()]
    for n, acc in enumerate(accs, start=start):
        shas.append(project.commit(f"c{n}", acc=acc))
    return shas


def bisect(cli, project: GitProject, good: str, bad: str, *args: str):
    done = cli("ci", "bisect", str(project.path), good, bad, *args, "--json")
    assert done.code in (0, 1), done.err
    return done.code, done.json()


def steps_by_subject(result) -> dict[str, dict]:
    return {s["subject"]: s for s in result["steps"]}


def test_finds_the_commit_that_broke_the_check_then_reuses_every_verdict(cli, git_project):
    # 14 commits after GOOD, each with its own tree; c9 drops acc below 0.9
    shas = history(git_project, [0.95 - n / 1000 if n < 9 else 0.5 - n / 1000 for n in range(1, 15)])
    code, first = bisect(cli, git_project, shas[0], shas[-1])
    assert code == 0
    assert (first["first_bad"], first["first_bad_subject"], first["unresolved"]) == (shas[9], "c9", [])
    # halving the range (GOOD, BAD] of 14: c7 good, c10 bad, c8 good, c9 bad
    assert [(s["subject"], s["outcome"]) for s in first["steps"]] == [
        ("c7", "good"), ("c10", "bad"), ("c8", "good"), ("c9", "bad")]
    assert first["runs"] == 4 <= math.ceil(math.log2(14)) + 1 and first["rounds"] == 4 and first["parallel"] == 1
    assert not any(s["reused"] for s in first["steps"])
    assert steps_by_subject(first)["c9"]["values"] == {"acc": 0.491}
    assert set(first) == {"good", "bad", "experiment", "check", "steps", "first_bad", "first_bad_subject",
                          "unresolved", "runs", "rounds", "parallel"}
    assert set(first["steps"][0]) == {"sha", "subject", "outcome", "run_id", "reused", "values", "reason", "round"}
    assert (first["good"], first["bad"], first["experiment"], first["check"]) == (shas[0], shas[-1], "train", None)

    for step in first["steps"]:  # the answer is kept with every run it rests on, and each verdict in git
        run = cli("runs", "show", step["run_id"], "--json").json()
        assert run["git_commit"] == step["sha"]
        said = [e["message"] for e in run["events"] if e["kind"] == "bisect"]
        assert said == [f"bisect {shas[0][:8]}..{shas[-1][:8]} (all checks): first bad commit {shas[9][:8]} c9"]
        verdict = "PASS" if step["outcome"] == "good" else "FAIL"
        assert git_project.git("notes", "--ref=workbench", "show", step["sha"]).startswith(f"workbench: {verdict}")

    again = cli("ci", "bisect", str(git_project.path), shas[0], shas[-1])
    assert again.code == 0, again.err
    assert "0 run(s) started in 0 round(s), 4 verdict(s) reused" in again.out
    assert f"first bad commit: {shas[9]} c9" in again.out
    assert len(cli("runs", "list", "--json").json()) == 4


def test_a_commit_with_the_same_tree_as_an_evaluated_one_is_reused(cli, git_project):
    # c3 is an empty commit: its tree is c2's
    shas = history(git_project, [0.94, 0.93, None, 0.92, 0.91, 0.5, 0.49, 0.48])
    _, small = bisect(cli, git_project, shas[0], shas[3])  # tries c1 and c2
    assert [s["subject"] for s in small["steps"]] == ["c1", "c2"] and small["runs"] == 2
    c2_run = steps_by_subject(small)["c2"]["run_id"]

    code, result = bisect(cli, git_project, shas[0], shas[-1])
    assert (code, result["first_bad"]) == (0, shas[6])
    steps = steps_by_subject(result)
    assert steps["c3"] == steps["c3"] | {"outcome": "good", "run_id": c2_run, "reused": True, "round": 0}
    assert steps["c1"]["reused"] and steps["c2"]["reused"]
    assert result["runs"] == 2 and [s for s in result["steps"] if not s["reused"]] == [
        s for s in result["steps"] if s["subject"] in ("c5", "c6")]


def test_an_exit_125_beside_the_answer_leaves_the_range_unresolved(cli, git_project):
    shas = history(git_project, [0.94, 0.93, 0.92, "skip", 0.5, 0.49, 0.48, 0.47])
    code, result = bisect(cli, git_project, shas[0], shas[-1])
    assert code == 1 and result["first_bad"] is None
    assert result["unresolved"] == [shas[4], shas[5]]
    skipped = steps_by_subject(result)["c4"]
    assert (skipped["outcome"], skipped["reason"]) == ("skip", "exit 125")
    assert [(s["subject"], s["outcome"]) for s in result["steps"]] == [("c4", "skip"), ("c3", "good"), ("c5", "bad")]
    said = cli("runs", "show", skipped["run_id"], "--json").json()["events"]
    assert f"first bad commit is one of {shas[4][:8]}, {shas[5][:8]} (1 skipped)" in said[-1]["message"]

    text = cli("ci", "bisect", str(git_project.path), shas[0], shas[-1])  # all reused now
    assert text.code == 1, text.err
    answer = [line for line in text.out.splitlines() if "first bad commit is one of" in line]
    assert answer == [f"could not narrow it to one commit: the first bad commit is one of {shas[4][:8]}, "
                      f"{shas[5][:8]} ({shas[4][:8]} could not be judged: skipped)"]
    assert "Traceback" not in text.err


def test_a_commit_whose_spec_is_broken_is_skipped_and_answered_around(cli, git_project):
    good_spec = (git_project.path / "workbench.toml").read_text()
    shas = [git_project.head()]
    for n, acc in enumerate([0.94, 0.93, 0.92], start=1):
        shas.append(git_project.commit(f"c{n}", acc=acc))
    shas.append(git_project.commit("c4 breaks the spec", {"workbench.toml": "[project\nname = "}, acc=0.91))
    shas.append(git_project.commit("c5 mends it", {"workbench.toml": good_spec}, acc=0.90))
    for n, acc in enumerate([0.5, 0.49, 0.48], start=6):
        shas.append(git_project.commit(f"c{n}", acc=acc))

    code, result = bisect(cli, git_project, shas[0], shas[-1])
    assert (code, result["first_bad"], result["unresolved"]) == (0, shas[6], [])
    steps = steps_by_subject(result)
    broken = steps["c4 breaks the spec"]
    assert broken["outcome"] == "skip" and "workbench.toml" in broken["reason"] and shas[4][:8] in broken["reason"]
    assert [(s["subject"][:2], s["outcome"]) for s in result["steps"]] == [
        ("c4", "skip"), ("c3", "good"), ("c5", "good"), ("c6", "bad")]
    run = cli("runs", "show", broken["run_id"], "--json").json()
    assert run["status"] == "failed" and run["started_at"] is None


def two_check_history(project: GitProject) -> list[str]:
    """GOOD: both checks pass; loss breaks at c3, acc at c6."""
    (project.path / "loss.txt").write_text("0.2\n")
    shas = [project.commit("two checks", {"workbench.toml": TWO_CHECKS, "train.sh": TRAIN_TWO})]
    values = [(0.95, 0.2), (0.95, 0.3), (0.94, 0.9), (0.94, 0.91), (0.93, 0.92), (0.5, 0.93), (0.49, 0.94)]
    for n, (acc, loss) in enumerate(values, start=1):
        shas.append(project.commit(f"c{n}", {"loss.txt": f"{loss}\n"}, acc=acc))
    return shas


def test_check_judges_by_that_check_only(cli, git_project):
    shas = two_check_history(git_project)
    code, by_loss = bisect(cli, git_project, shas[0], shas[-1], "--check", "loss")
    assert (code, by_loss["first_bad"], by_loss["check"]) == (0, shas[3], "loss")
    assert all(set(s["values"]) == {"loss"} for s in by_loss["steps"])

    code, by_acc = bisect(cli, git_project, shas[0], shas[-1], "--check", "acc")
    assert (code, by_acc["first_bad"]) == (0, shas[6])
    assert all(set(s["values"]) == {"acc"} for s in by_acc["steps"])
    # c3 fails on loss but passes on acc: judged good by acc (its run reused)
    assert steps_by_subject(by_acc)["c3"] | {"reused": True} == steps_by_subject(by_loss)["c3"] | {
        "outcome": "good", "values": {"acc": 0.94}, "reused": True, "round": 0}
    event = [e["message"] for e in cli("runs", "show", by_acc["steps"][-1]["run_id"], "--json").json()["events"]
             if e["kind"] == "bisect"]
    assert f"bisect {shas[0][:8]}..{shas[-1][:8]} (check acc): first bad commit {shas[6][:8]} c6" in event

    code, by_all = bisect(cli, git_project, shas[0], shas[-1])
    assert (code, by_all["first_bad"]) == (0, shas[3])


def test_parallel_queues_a_round_together_and_takes_fewer_rounds(cli, tmp_path):
    accs = [0.95 - n / 1000 if n < 11 else 0.5 - n / 1000 for n in range(1, 17)]  # c11 breaks it
    one, three = GitProject(tmp_path / "one"), GitProject(tmp_path / "three")
    one_shas, three_shas = history(one, accs), history(three, accs)
    _, serial = bisect(cli, one, one_shas[0], one_shas[-1])
    _, parallel = bisect(cli, three, three_shas[0], three_shas[-1], "--parallel", "3")
    assert (serial["first_bad"], parallel["first_bad"]) == (one_shas[11], three_shas[11])
    assert parallel["parallel"] == 3 and parallel["rounds"] < serial["rounds"]
    # (GOOD, BAD] of 16 split in four by c4, c8, c12 → (c8, c12]: c9, c10, c11 → c11 is first bad
    first_round = [s for s in parallel["steps"] if s["round"] == 1]
    assert sorted(s["subject"] for s in first_round) == ["c12", "c4", "c8"]
    created = [cli("runs", "show", s["run_id"], "--json").json()["created_at"] for s in first_round]
    assert max(created) - min(created) < 1.0
    assert parallel["rounds"] == 2 and parallel["runs"] == 6


def test_bad_input_is_one_line_and_records_nothing(cli, git_project, tmp_path):
    shas = history(git_project, [0.94, 0.5])
    path = str(git_project.path)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "workbench.toml").write_text((git_project.path / "workbench.toml").read_text())
    cases = [
        ((str(plain), "HEAD~1", "HEAD"), "is not in a git repository"),
        ((path, "nosuchref", shas[-1]), "GOOD 'nosuchref' is not a commit"),
        ((path, shas[0], "deadbeef"), "BAD 'deadbeef' is not a commit"),
        ((path, shas[1], shas[1]), f"GOOD and BAD are the same commit ({shas[1][:8]})"),
        ((path, shas[-1], shas[0]), "is not an ancestor of BAD"),
        ((path, shas[0], shas[-1], "-e", "nope"), "no experiment 'nope'"),
        ((path, shas[0], shas[-1], "--check", "loss"), "experiment train has no check on 'loss' (its checks: acc)"),
        ((path, shas[0], shas[-1], "--parallel", "0"), "--parallel must be at least 1 (got 0)"),
    ]
    for args, needle in cases:
        assert_one_line_error(cli("ci", "bisect", *args), needle)
    assert cli("runs", "list", "--json").json() == []


def test_a_run_of_the_commit_still_going_is_waited_for_not_started_again(home, git_project):
    from git_projects import TRAIN
    from workbench.projects.git_repo import GitRepo
    from workbench.services import Workbench
    from workbench.services.ci_runs import launch_commit

    shas = history(git_project, [0.94, 0.93])
    shas.append(git_project.commit("c3 trains slowly", {"train.sh": TRAIN.replace("acc=$(", "sleep 3; acc=$(")}))
    shas += history(git_project, [0.5, 0.49, 0.48], start=4)[1:]
    wb, said = Workbench(), []
    repo = GitRepo(git_project.path)
    going = launch_commit(wb._services, repo, repo.commit(shas[3]), "train", project="ciproj", branch="main")

    result = wb.ci_bisect(str(git_project.path), shas[0], shas[-1], said.append)
    assert result.first_bad == shas[4]
    first = result.steps[0]  # c3, the first probe of (GOOD, BAD] of 6: its run was going already
    assert (first.sha, first.outcome, first.run_id, first.reused, first.round) == (shas[3], "good", going["id"], True, 1)
    assert f"round 1: trying 1 commit(s) in a range of 6: {shas[3][:8]} (1 of them already running)" in said
    assert result.runs == 1 and [(s.subject, s.reused) for s in result.steps] == [("c3 trains slowly", True), ("c4", False)]


def test_ctrl_c_says_which_runs_keep_going_and_the_next_bisect_uses_them(cli, home, git_project):
    import os
    import signal
    import subprocess
    import sys

    from git_projects import TRAIN

    slow = TRAIN.replace("acc=$(", "sleep 2; acc=$(")
    shas = [git_project.head(), git_project.commit("c1", {"train.sh": slow}, acc=0.94)]
    shas += history(git_project, [0.93, 0.5, 0.49], start=2)[1:]
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "ci", "bisect", str(git_project.path), shas[0],
                             shas[-1]], env={**os.environ, "WORKBENCH_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("round 1:"):
                break
        wait_for(lambda: cli("runs", "list", "--json").json(), timeout=30, interval=0.1)  # its probe is queued
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, (seen, out, err)
    going = [r["id"] for r in cli("runs", "list", "--json").json()]
    assert len(going) == 1 and f"bisect interrupted: run(s) {going[0]} keep going" in out, (out, err)
    assert "Traceback" not in err

    code, result = bisect(cli, git_project, shas[0], shas[-1])
    assert (code, result["first_bad"], result["runs"]) == (0, shas[3], 1)
    assert (result["steps"][0]["subject"], result["steps"][0]["run_id"], result["steps"][0]["reused"]) == (
        "c2", going[0], True)


def test_check_declared_only_later_judges_older_commits_by_the_work_trees_check(cli, git_project):
    (git_project.path / "loss.txt").write_text("0.2\n")
    only_acc = TWO_CHECKS.replace(', loss = "<= 0.5"', "")
    shas = [git_project.commit("loss written, not checked", {"workbench.toml": only_acc, "train.sh": TRAIN_TWO})]
    for n, loss in enumerate([0.3, 0.4, 0.8, 0.9], start=1):
        shas.append(git_project.commit(f"c{n}", {"loss.txt": f"{loss}\n"}))
    shas.append(git_project.commit("c5 checks loss", {"workbench.toml": TWO_CHECKS}))
    code, result = bisect(cli, git_project, shas[0], shas[-1], "--check", "loss")
    assert (code, result["first_bad"]) == (0, shas[3])
    assert [(s["subject"], s["outcome"], s["values"]) for s in result["steps"]] == [
        ("c2", "good", {"loss": 0.4}), ("c3", "bad", {"loss": 0.8})]


def test_k_is_the_free_gpu_slots_that_fit_the_experiment(home):
    from workbench.machines.gpus import GpuInventory
    from workbench.machines.nvidia_smi import GpuReading
    from workbench.projects.spec import Experiment
    from workbench.services import Workbench
    from workbench.services.ci_bisect import free_slots

    def h100(index: int, busy: bool) -> GpuReading:  # as the fixture H100 reads: idle, or busy with a job
        return GpuReading(index, f"GPU-3a9a2f4c-6b3e-4c8e-9d52-6f0e1c7d2a1{index}", "NVIDIA H100 80GB HBM3",
                          memory_total=80 << 30, memory_used=(60 << 30) if busy else 0,
                          utilization=90.0 if busy else 0.0)
    wb = Workbench(gpu_probe=lambda: GpuInventory([h100(0, False), h100(1, False), h100(2, True), h100(3, False)],
                                                  driver="580.159.04"))
    assert [free_slots(wb._services, Experiment(name="g", command=["true"], gpus=gpus)) for gpus in (0, 1, 2, 4)] == [
        1, 3, 1, 1]


def test_a_commit_whose_recorded_run_was_cancelled_is_run_again_not_skipped(cli, git_project):
    from workbench.projects.git_repo import GitRepo
    from workbench.services import Workbench
    from workbench.services.ci_runs import launch_commit

    shas = history(git_project, [0.94, 0.5, 0.49])  # c2 broke it
    wb = Workbench()
    try:
        repo = GitRepo(git_project.path)
        cancelled = launch_commit(wb._services, repo, repo.commit(shas[2]), "train", project="ciproj", branch="main")
        wb.cancel(cancelled["id"])
        wait_for(lambda: wb.run(cancelled["id"]).status == "cancelled", timeout=30)
        result = wb.ci_bisect(str(git_project.path), shas[0], shas[-1], lambda line: None)
    finally:
        wb.close()
    assert result.first_bad == shas[2] and not result.unresolved
    step = next(s for s in result.steps if s.sha == shas[2])
    assert (step.outcome, step.reused) == ("bad", False) and step.run_id != cancelled["id"]
