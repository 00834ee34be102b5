"""Sweeps (issue 11) on this workstation's engine: grid, random and TPE (Optuna) sweeps whose trials go
through the queue and the detached dispatcher, max_parallel, median pruning, a dispatcher killed mid-sweep,
and the bad inputs. The objective is real: each trial computes -(x - 3)² (+ y) with busybox awk, writing it
at every step, so the best trial is the one nearest x = 3."""

from __future__ import annotations

import os
import signal
import time

import pytest

from helpers import assert_one_line_error, dispatcher_pids, wait_for

pytestmark = pytest.mark.docker

SCORE = r"""#!/bin/sh
# score = -(x - 3)^2 + y, written at steps 1..STEPS (a straight climb to it), PAUSE seconds apart
i=1
while [ $i -le "$WB_PARAM_STEPS" ]; do
  awk -v x="$WB_PARAM_X" -v y="$WB_PARAM_Y" -v s=$i -v n="$WB_PARAM_STEPS" \
    'BEGIN { printf "{\"step\": %d, \"score\": %.6f}\n", s, (-(x - 3) * (x - 3) + y) * s / n }' >> "$WORKBENCH_METRICS"
  sleep "$WB_PARAM_PAUSE"
  i=$((i + 1))
done
"""


def spec(sweep: str, params: str = "x = 1.0, y = 0, steps = 2, pause = 0.05", machine: str = "local") -> str:
    return f"""
[project]
name = "quadratic"
[experiments.score]
image = "busybox:latest"
command = ["sh", "score.sh"]
params = {{ {params} }}
machine = "{machine}"
[experiments.score.sweep]
{sweep}
"""


@pytest.fixture
def project(make_project):
    def make(sweep: str, **kwargs) -> str:
        return str(make_project(spec(sweep, **kwargs), files={"score.sh": SCORE}))
    return make


def _show(cli, sweep_id: str) -> dict:
    shown = cli("sweeps", "show", sweep_id, "--json")
    assert shown.code == 0, shown.err
    return shown.json()


def _done(cli, sweep_id: str, timeout: float = 150) -> dict:
    return wait_for(lambda: (s := _show(cli, sweep_id))["status"] != "running" and s, timeout=timeout, interval=0.5)


def _start(cli, path: str, *args: str) -> str:
    started = cli("sweep", path, *args, "--json")
    assert started.code == 0, started.err
    return started.json()["id"]


def _runs(cli, ids: list[str]) -> list[dict]:
    return [cli("runs", "show", i, "--json").json() for i in ids]


def test_a_grid_sweep_runs_every_combination_at_most_max_parallel_at_once(cli, project):
    path = project('x = [1.0, 3.0, 5.0]\ny = [0, 1]\nobjective = "score"\nmax_parallel = 2')
    sweep_id = _start(cli, path)
    done = _done(cli, sweep_id)
    assert done["status"] == "done" and done["progress"] == {"succeeded": 6}, done
    trials = done["trials"]
    assert sorted((t["params"]["x"], t["params"]["y"]) for t in trials) == \
        [(1.0, 0), (1.0, 1), (3.0, 0), (3.0, 1), (5.0, 0), (5.0, 1)]
    assert [t["objective"] for t in trials] == sorted((t["objective"] for t in trials), reverse=True)  # best first
    assert trials[0]["params"] == {"x": 3.0, "y": 1} and trials[0]["objective"] == pytest.approx(1.0)
    assert done["best"] == trials[0]["id"] and f"best {trials[0]['id']}" in done["status_reason"]
    runs = _runs(cli, [t["id"] for t in trials])
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
    assert all(sum(1 for s, e in spans if s <= start < e) <= 2 for start, _ in spans), spans  # max_parallel
    assert len({r["snapshot"] for r in runs}) == 1  # one snapshot, taken when the sweep started
    listed = cli("sweeps", "list", "--json").json()
    assert [s["id"] for s in listed] == [sweep_id] and listed[0]["progress"] == {"succeeded": 6}
    text = cli("sweeps", "show", sweep_id).out
    assert "score by x" in text and "●" in text  # a scatter per param


def test_a_random_sweep_draws_its_samples_within_the_ranges(cli, project):
    path = project('method = "random"\nsamples = 5\nx = { low = 0.5, high = 8.0, log = true }\ny = [0, 2]\n'
                   'objective = "score"')
    done = _done(cli, _start(cli, path))
    assert done["status"] == "done" and len(done["trials"]) == 5
    assert all(0.5 <= t["params"]["x"] <= 8.0 and t["params"]["y"] in (0, 2) for t in done["trials"])
    assert len({t["params"]["x"] for t in done["trials"]}) == 5


def test_a_tpe_sweep_finds_the_optimum_and_survives_its_dispatcher_killed(cli, project, home):
    path = project('method = "tpe"\ntrials = 20\nmax_parallel = 3\nx = { low = 0.0, high = 10.0 }\n'
                   'objective = "score"\ndirection = "maximize"', params="x = 1.0, y = 0, steps = 1, pause = 0.0")
    sweep_id = _start(cli, path)
    wait_for(lambda: len(_show(cli, sweep_id)["trials"]) >= 6, timeout=90, interval=0.3)
    killed = dispatcher_pids(home)
    for pid in killed:  # mid-sweep: trials in flight, more to ask
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not set(dispatcher_pids(home)) & set(killed), timeout=5)
    # the next command replaces it at once (its owner's process is gone), not once its lease (10 s) runs out
    began = time.monotonic()
    assert cli("sweeps", "list").code == 0
    assert wait_for(lambda: dispatcher_pids(home), timeout=3, interval=0.1)
    assert time.monotonic() - began < 5
    done = _done(cli, sweep_id, timeout=240)
    trials = done["trials"]
    assert done["status"] == "done" and len(trials) == 20, done
    assert sorted(t["trial"] for t in trials) == list(range(20))  # none lost, none repeated
    assert all(t["status"] == "succeeded" for t in trials), [t["status"] for t in trials]
    assert trials[0]["objective"] >= -1.0, trials[0]  # |x - 3| <= 1: random alone misses that 1 time in 100
    assert len({t["params"]["x"] for t in trials}) == 20


def test_median_pruning_stops_a_poor_trial(cli, project):
    path = project('x = [3.0, 3.5, 9.0]\nobjective = "score"\nmax_parallel = 1\nprune = "median"',
                   params="x = 1.0, y = 0, steps = 12, pause = 0.5")
    done = _done(cli, _start(cli, path), timeout=200)
    by_x = {t["params"]["x"]: t for t in done["trials"]}
    assert by_x[3.0]["status"] == by_x[3.5]["status"] == "succeeded"
    assert by_x[9.0]["status"] == "pruned", by_x[9.0]
    assert by_x[9.0]["status_reason"].startswith("pruned: score ") and "median" in by_x[9.0]["status_reason"]
    assert done["progress"] == {"succeeded": 2, "pruned": 1}


def test_an_objective_never_written_fails_clearly(cli, project):
    path = project('x = [1.0, 2.0]\nobjective = "accuracy"')
    done = _done(cli, _start(cli, path))
    assert done["best"] is None and all(t["objective"] is None for t in done["trials"])
    events = cli("runs", "show", done["trials"][0]["id"], "--json").json()["events"]
    assert any(e["kind"] == "objective" and "never wrote 'accuracy'" in e["message"] for e in events)


def test_bad_sweeps_are_one_clear_line(cli, project, make_project):
    cases = [
        ('x = ["a", "b"]', "sweep.x", "does not match the param's type (float)"),
        ('z = [1, 2]', "sweep.z: not a declared param"),
        ('x = []', "sweep.x", "non-empty array"),
        ('method = "tpe"\ntrials = 0\nx = { low = 0.0, high = 1.0 }\nobjective = "score"', "trials", "at least 1"),
        ('method = "tpe"\ntrials = 5\nx = { low = 0.0, high = 1.0 }', "needs `objective"),
        ('x = { low = 0.0, high = 1.0 }', "a grid needs a list"),
        ('method = "bayes"\nx = [1.0]', "expected one of 'grid', 'random', 'tpe'"),
        ('x = { low = 2.0, high = 1.0 }\nmethod = "random"\nsamples = 2', "low must be below high"),
        ('prune = "median"\nx = [1.0]', "needs `objective"),
    ]
    for sweep, *needles in cases:
        assert_one_line_error(cli("sweep", project(sweep)), *needles)
    assert cli("sweeps", "list", "--json").json() == []  # nothing recorded by a refused sweep
    plain = make_project('[project]\nname = "p"\n[experiments.a]\nimage = "busybox:latest"\ncommand = ["true"]\n')
    assert_one_line_error(cli("sweep", str(plain)), "declares no sweep")
    assert_one_line_error(cli("sweeps", "show", "nope"), "no sweep 'nope'")
    assert_one_line_error(cli("sweep", project('x = [1.0]'), "-p", "x=2.0"), "'x' is swept")


HUGE = "[project]\nname = \"h\"\n[experiments.t]\nimage = \"busybox:latest\"\ncommand = [\"true\"]\n" \
       "params = { %s }\n[experiments.t.sweep]\n%s\n"


def test_a_huge_sweep_is_counted_and_refused_before_anything_is_made(cli, make_project):
    names = "abcdefg"
    grid = make_project(HUGE % (", ".join(f"{n} = 0" for n in names),
                                "\n".join(f"{n} = {list(range(10))}" for n in names)))
    started = time.monotonic()
    assert_one_line_error(cli("sweep", str(grid)), "the grid of 7 param(s) (10 × 10 × 10 × 10 × 10 × 10 × 10 values) "
                          "has 10,000,000 trials, more than the 100,000 trials a sweep may have")
    assert time.monotonic() - started < 10  # counted, not built (building it took 2.8 GB and never ended)
    sampled = make_project(HUGE % ("a = 0.5", 'method = "random"\nsamples = 100001\na = { low = 0.0, high = 1.0 }'))
    assert_one_line_error(cli("sweep", str(sampled)), "samples = 100,001, more than the 100,000 trials")
    assert cli("sweeps", "list", "--json").json() == [] and cli("runs", "list", "--json").json() == []


def test_a_sweep_of_several_pages_records_every_trial_once(cli, project):
    """2,500 trials: three pages of the lazy product, each in its own transaction, each point once."""
    sweep_id = _start(cli, project("x = [%s]\ny = [%s]\nmax_parallel = 1" % (
        ", ".join(f"{i}.0" for i in range(50)), ", ".join(str(i) for i in range(50)))))
    assert cli("sweeps", "cancel", sweep_id).code == 0
    trials = _show(cli, sweep_id)["trials"]
    assert sorted(t["trial"] for t in trials) == list(range(2500))
    assert len({(t["params"]["x"], t["params"]["y"]) for t in trials}) == 2500




@pytest.fixture(autouse=True)
def _stopdispatcher_pids(home):
    yield
    for pid in dispatcher_pids(home):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
