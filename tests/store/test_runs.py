"""The runs table's queries (store/runs.py): filter by key=value as the table shows it, sort by a metric or param
with missing values last, notes of an unreachable host, recently finished runs, the names of every value; fast
on 100k runs."""

from __future__ import annotations

import time

from workbench.store import open_store
from workbench.store.ingest import MetricBatch, Offset


def _runs_with_values(store, values: list[tuple[str, dict, dict]]) -> None:
    """(id, params, last metric values) per run, created in list order."""
    for i, (run_id, params, summary) in enumerate(values):
        seq = store.insert_run({"id": run_id, "project": "p", "project_path": "/p", "experiment": "e",
                                "status": "succeeded", "machine": "local", "executor": "process",
                                "created_at": 1_000_000.0 + i, "params": params})
        if summary:
            keys = {name: store.key_id(name) for name in summary}
            rows = [(keys[k], 0, 1.0, None if v != v else v) for k, v in summary.items()]
            store.commit_metrics(seq, MetricBatch(rows, 0, 0, {k: "NaN" if v != v else v for k, v in summary.items()}),
                                 Offset("1", 1, 0))


def test_filter_key_value_matches_what_the_table_shows(tmp_path):
    """`lr=0.3` finds the run whose params cell reads lr=0.3 (issue 9, item 14): param or last metric value,
    as formatted on screen (4 significant digits), or equal as a number; free words still match text."""
    store = open_store(tmp_path / "wb.db")
    _runs_with_values(store, [
        ("a", {"lr": 0.3, "epochs": 15, "opt": "adam"}, {"loss": 0.123456}),
        ("b", {"lr": 0.35, "epochs": 15, "opt": "sgd", "flag": True}, {"loss": 0.5}),
        ("c", {"lr": 0.03, "epochs": 3, "layers": [64, 32]}, {"loss": float("nan")}),
        ("d", {"lr": 3, "note": "lr=0.3"}, {}),
    ])

    def ids(text: str) -> list[str]:
        found = [r["id"] for r in store.list_runs(text=text, sort="id", descending=False)]
        assert store.count_matching(text=text) == len(found)
        return found

    assert ids("lr=0.3") == ["a"]  # not 0.35, not 0.03, not the string "lr=0.3"
    assert ids("lr=0.30") == ["a"] and ids("lr=3e-1") == ["a"]  # the same number written otherwise
    assert ids("lr=3") == ["d"] and ids("lr=3.0") == ["d"]
    assert ids("loss=0.1235") == ["a"]  # a metric, rounded as the metrics cell shows it
    assert ids("loss=nan") == ["c"] and ids("loss=0.5") == ["b"]
    assert ids("opt=adam") == ["a"] and ids("flag=True") == ["b"] and ids("layers=[64, 32]") == ["c"]
    assert ids("lr=0.3 epochs=15") == ["a"] and ids("lr=0.35 epochs=3") == []
    assert ids("epochs=") == ["a", "b", "c"]  # the key alone: runs that have it
    assert ids("sgd") == ["b"] and ids("sgd lr=0.35") == ["b"] and ids("adam lr=0.35") == []
    assert ids("nope=1") == [] and ids("lr=x") == []
    assert ids('we"ird=1') == [] and ids("=") == ["d"]  # no key: free text, found in d's params text


def test_sort_by_a_metric_or_param_puts_missing_values_last(tmp_path):
    store = open_store(tmp_path / "wb.db")
    _runs_with_values(store, [
        ("a", {"lr": 0.1}, {"loss": 0.5}),
        ("b", {"lr": 0.3}, {"loss": float("nan")}),  # NaN: no value to sort by
        ("c", {}, {"loss": 0.1}),
        ("d", {"lr": 0.2}, {}),
        ("e", {"lr": 0.05}, {"loss": 0.9, 'we"ird': 2.0}),
        ("f", {"lr": 0.4}, {'we"ird': 1.0}),
    ])

    def ids(sort: str, descending: bool, **page) -> list[str]:
        return [r["id"] for r in store.list_runs(sort=sort, descending=descending, **page)]

    assert ids("metric:loss", True) == ["e", "a", "c", "f", "d", "b"]  # missing ones newest first, as the rest
    assert ids("metric:loss", False) == ["c", "a", "e", "b", "d", "f"]
    assert ids("metric:loss", True, limit=2, offset=2) == ["c", "f"]  # pages agree with the whole order
    assert ids("param:lr", True) == ["f", "b", "d", "a", "e", "c"]
    assert ids("param:lr", False) == ["e", "a", "d", "b", "f", "c"]
    assert ids('metric:we"ird', False) == ["f", "e", "a", "b", "c", "d"]  # a name no JSON path can quote
    assert ids("metric:nothing", True) == ["f", "e", "d", "c", "b", "a"]
    assert ids("metric:loss", True, text="lr=0.1") == ["a"]
    assert "sort_key" not in store.list_runs(sort="metric:loss")[0]


def test_key_value_filter_and_value_sort_stay_fast_on_100k_runs(tmp_path):
    import json
    import random

    store = open_store(tmp_path / "wb.db")
    rng = random.Random(7)
    runs, params = [], []
    for i in range(100_000):
        p = {"lr": rng.choice([0.1, 0.3, 0.01, 0.003]), "epochs": rng.randint(1, 50),
             "opt": rng.choice(["adam", "sgd"])}
        summary = {"loss": rng.random(), "acc": rng.random()} if i % 10 else {}
        runs.append((i + 1, f"{i:08x}", 1e9 + i, json.dumps(p), json.dumps(summary)))
        params += [(i + 1, k, json.dumps(v)) for k, v in p.items()]
    with store.tx() as conn:
        conn.executemany("INSERT INTO runs (seq, id, project, experiment, status, machine, executor, project_path, "
                         "created_at, params, summary) VALUES (?, ?, 'p', 'e', 'succeeded', 'local', 'process', '/p', "
                         "?, ?, ?)", runs)
        conn.executemany("INSERT INTO params (run_seq, name, value) VALUES (?, ?, ?)", params)
    started = time.perf_counter()
    page = store.list_runs(text="lr=0.3 opt=adam")
    total = store.count_matching(text="lr=0.3 opt=adam")
    by_loss = store.list_runs(sort="metric:loss")
    deep = store.list_runs(sort="metric:loss", offset=99_900)
    elapsed = time.perf_counter() - started
    assert len(page) == 100 and 10_000 < total < 15_000
    assert all(r["params"]["lr"] == 0.3 and r["params"]["opt"] == "adam" for r in page)
    losses = [r["summary"]["loss"] for r in by_loss]
    assert losses == sorted(losses, reverse=True) and all(r["summary"] == {} for r in deep)
    assert elapsed < 3.0, elapsed  # about 0.5 s here: one pass each, no JSON sorted


def test_unreachable_is_noted_once_and_never_on_an_ended_run(tmp_path):
    store = open_store(tmp_path / "wb.db")
    for run_id in ("r1", "r2"):
        store.insert_run({"id": run_id, "project": "p", "project_path": "/p", "experiment": "e",
                          "status": "running", "machine": "gpu-a", "executor": "docker", "created_at": time.time()})
    store.finish_run("r2", "succeeded", exit_code=0, reason=None)
    prefix = "host unreachable"
    assert store.note_unreachable("r1", prefix, f"{prefix} since T1", "gpu-a does not answer")
    assert not store.note_unreachable("r1", prefix, f"{prefix} since T2", "gpu-a does not answer")  # a second look
    assert not store.note_unreachable("r2", prefix, f"{prefix} since T1", "gpu-a does not answer")  # it ended
    assert store.get_run("r1")["status_reason"] == f"{prefix} since T1"
    assert store.get_run("r2")["status_reason"] is None
    assert store.clear_unreachable("r1", prefix, "caught up") and not store.clear_unreachable("r1", prefix, "again")
    assert store.get_run("r1")["status_reason"] is None
    assert [e["kind"] for e in store.events("r1")][-2:] == ["unreachable", "reachable"]
    assert [e["kind"] for e in store.events("r1")].count("unreachable") == 1


def test_recently_finished_runs_come_newest_finish_first(tmp_path):
    """The Dashboard's Recent results (issue 22 item 19): a long run started first and finished last leads;
    live runs are not among them; a run that ended with no finish stamp (lost) counts from its creation."""
    store = open_store(tmp_path / "wb.db")
    rows = [("long", "succeeded", 100.0, 900.0), ("quick", "succeeded", 200.0, 210.0),
            ("broke", "failed", 300.0, 310.0), ("live", "running", 400.0, None), ("gone", "lost", 500.0, None),
            ("late", "cancelled", 600.0, 700.0)]
    for run_id, status, created, finished in rows:
        store.insert_run({"id": run_id, "project": "p", "project_path": "/p", "experiment": "e", "status": status,
                          "machine": "local", "executor": "process", "created_at": created,
                          "started_at": created, "finished_at": finished})
    assert [r["id"] for r in store.recently_finished(limit=10)] == ["long", "late", "gone", "broke", "quick"]
    assert [r["id"] for r in store.recently_finished(limit=2)] == ["long", "late"]


def test_recently_finished_stays_fast_on_100k_runs(tmp_path):
    store = open_store(tmp_path / "wb.db")
    runs = [(i + 1, f"{i:08x}", "running" if i % 1000 == 0 else "succeeded", 1e9 + i, 1e9 + i + (i % 97) * 10)
            for i in range(100_000)]
    with store.tx() as conn:
        conn.executemany("INSERT INTO runs (seq, id, project, experiment, status, machine, executor, project_path, "
                         "created_at, finished_at) VALUES (?, ?, 'p', 'e', ?, 'local', 'process', '/p', ?, ?)", runs)
    started = time.perf_counter()
    for _ in range(10):
        recent = store.recently_finished(limit=8)
    elapsed = (time.perf_counter() - started) / 10
    finished = [r["finished_at"] for r in recent]
    assert finished == sorted(finished, reverse=True) and finished[0] == max(r[4] for r in runs if r[2] != "running")
    print(f"recently_finished on 100k runs: {elapsed * 1000:.1f} ms")
    assert elapsed < 0.05, elapsed  # the Dashboard asks every second


def test_value_names_are_every_param_and_metric_of_the_filtered_history(tmp_path):
    """The Runs screen's `o` cycles these (issue 22 item 4): names of every matching run, not one page's."""
    store = open_store(tmp_path / "wb.db")
    _runs_with_values(store, [
        ("a", {"lr": 0.3, "epochs": 15}, {"loss": 0.1}),
        ("b", {"lr": 0.1, "dropout": 0.5}, {"acc": 0.9, "loss": 0.2}),
        ("c", {"seed": 1}, {}),
    ])
    assert store.value_names() == (["dropout", "epochs", "lr", "seed"], ["acc", "loss"])
    assert store.value_names(text="lr=0.3") == (["epochs", "lr"], ["loss"])
    assert store.value_names(text="nothing-matches") == ([], [])
