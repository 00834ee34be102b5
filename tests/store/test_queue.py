"""The queue's tables (store/queue.py): a GPU reserved by one run only, and what each project's runs cost."""

from __future__ import annotations

import time

import pytest

from workbench.store import open_store


def test_a_gpu_is_reserved_by_one_run_only_and_freed_when_it_ends(tmp_path):
    store = open_store(tmp_path / "wb.db")
    for run_id in ("r1", "r2", "q1"):
        store.insert_run({"id": run_id, "project": "p", "project_path": "/p", "experiment": "e", "status": "queued",
                          "machine": "auto", "executor": "docker", "created_at": time.time(),
                          **({"waiting": {"gpus": 1}} if run_id == "q1" else {})})
    assert store.place_run("r1", "gpu-a", ["GPU-1", "GPU-2"], {"gpu_share": 0.5})
    before = store.reservations_version()
    assert not store.place_run("r2", "gpu-a", ["GPU-3", "GPU-2"], {"gpu_share": 0.5})  # GPU-2 is r1's
    assert store.get_run("r2")["machine"] == "auto"  # nothing of the failed placement stayed
    assert store.reserved_gpus("gpu-a") == {("gpu-a", "GPU-1"): "r1", ("gpu-a", "GPU-2"): "r1"}
    assert store.place_run("r2", "gpu-b", ["GPU-2"], {})  # the same uuid on another machine is another GPU
    assert [r["id"] for r in store.waiting_runs()] == ["q1"]
    assert not store.place_run("r2", "gpu-a", ["GPU-3"], {}, from_queue=True)  # r2 is not waiting
    store.finish_run("q1", "cancelled", exit_code=None, reason="cancelled while queued")
    assert not store.place_run("q1", "gpu-a", ["GPU-3"], {}, from_queue=True)  # cancelled: never placed
    assert store.waiting_runs() == []
    store.finish_run("r1", "succeeded", exit_code=0, reason=None)
    assert store.reserved_gpus("gpu-a") == {} and store.reservations_version() != before


def test_what_a_project_costs_is_each_run_rate_times_hours_times_its_share(tmp_path):
    store = open_store(tmp_path / "wb.db")
    runs = [("a1", "a", 3.6, 0.5, 0.0, 1000.0), ("a2", "a", 7.2, 1.0, 0.0, 500.0), ("b1", "b", None, 1.0, 0.0, 9.0),
            ("a3", "a", 3.6, 0.25, 900.0, None)]  # a3 still running at t=1000
    for run_id, project, rate, share, started, finished in runs:
        store.insert_run({"id": run_id, "project": project, "project_path": "/p", "experiment": "e",
                          "status": "running" if finished is None else "succeeded", "machine": "gpu-a",
                          "executor": "docker", "created_at": started, "started_at": started,
                          "finished_at": finished, "hourly_cost": rate, "gpu_share": share})
    costs = store.costs_by_project(now=1000.0)
    assert costs == {"a": pytest.approx(3.6 * 1000 / 3600 * 0.5 + 7.2 * 500 / 3600 + 3.6 * 100 / 3600 * 0.25)}
