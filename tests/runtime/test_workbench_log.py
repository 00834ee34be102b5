"""workbench_log, the metrics helper every run has on its PYTHONPATH: its lines read back by Workbench's own
metrics parser, its refusals, and lines that stay whole from threads and forked workers."""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from workbench.execution.metrics_parser import parse_metric_lines

RUNTIME = Path(__file__).resolve().parents[2] / "workbench" / "runtime"
sys.path.insert(0, str(RUNTIME))
import workbench_log  # noqa: E402
from workbench_log import log  # noqa: E402


@pytest.fixture
def metrics(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("WORKBENCH_METRICS", str(path))
    monkeypatch.setattr(workbench_log, "_handle", None)
    return path


def parsed(path: Path):
    keys: dict[str, int] = {}
    batch, consumed = parse_metric_lines(path.read_bytes(), 1, 1000.0, lambda key: keys.setdefault(key, len(keys)))
    names = {kid: key for key, kid in keys.items()}
    return [(names[kid], step, ts, value) for kid, step, ts, value in batch.rows], batch, consumed


def test_lines_read_back_by_workbench_with_steps_nan_and_infinity(metrics):
    numpy = pytest.importorskip("numpy")
    log(step=1, loss=0.5, acc=1)
    log(step=2, loss=float("nan"), grad=float("inf"), ts=1700000000.5)
    log({"val/loss": numpy.float32(0.25), "n": numpy.int64(7)}, step=numpy.int64(3))
    log(lr=numpy.array(0.125))

    assert metrics.read_text().splitlines()[0] == '{"step": 1, "loss": 0.5, "acc": 1}'
    points, batch, consumed = parsed(metrics)
    assert consumed == 4 and batch.bad_lines == 0 and batch.bad_values == 0
    assert points == [("loss", 1, 1000.0, 0.5), ("acc", 1, 1000.0, 1.0),
                      ("loss", 2, 1700000000.5, None), ("grad", 2, 1700000000.5, math.inf),
                      ("val/loss", 3, 1000.0, 0.25), ("n", 3, 1000.0, 7.0),
                      ("lr", 4, 1000.0, 0.125)]  # no step: the line's ordinal


@pytest.mark.parametrize(("values", "message"), [
    ({"done": True}, "done is a bool; log it as a number (int(done))"),
    ({"loss": "0.3"}, "loss is not a number (str '0.3')"),
    ({"loss": None}, "loss is not a number (NoneType None)"),
    ({"step": 1.0, "loss": 1}, "step must be an int, got float 1.0"),
    ({"step": True, "loss": 1}, "step must be an int, got bool True"),
])
def test_what_is_not_a_number_is_refused_naming_the_key(metrics, values, message):
    with pytest.raises(TypeError) as refused:
        log(**values)
    assert str(refused.value) == "workbench_log: " + message
    assert not metrics.exists()


def test_numpy_arrays_and_bools_are_refused(metrics):
    numpy = pytest.importorskip("numpy")
    with pytest.raises(TypeError, match="acc is not a single number"):
        log(acc=numpy.array([0.1, 0.2]))
    with pytest.raises(TypeError, match="flag is not a number"):
        log(flag=numpy.bool_(True))
    assert not metrics.exists()


def test_outside_a_run_it_is_a_no_op_that_says_so_once(tmp_path):
    script = "from workbench_log import log\nfor i in range(3): log(step=i, loss=0.1)\nprint('trained')"
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_METRICS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**env, "PYTHONPATH": str(RUNTIME)}, timeout=30)

    assert done.returncode == 0 and done.stdout == "trained\n"
    assert done.stderr == ("[workbench] WORKBENCH_METRICS is not set (not in a Workbench run): "
                           "metrics are not recorded\n")
    assert list(tmp_path.iterdir()) == []


def _worker(worker: int, lines: int) -> None:
    wide = {f"metric_{k}": worker * 1000.0 + k for k in range(150)}  # lines of ~4 KB: beyond one pipe buffer
    for step in range(lines):
        log(wide, step=step)


def test_lines_stay_whole_from_forked_workers_and_threads(metrics):
    log(step=0, warmup=1.0)  # the parent's descriptor is open before the fork, as in a DataLoader
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(worker, 200)) for worker in range(1, 4)]
    threads = [threading.Thread(target=_worker, args=(worker, 200)) for worker in range(4, 6)]
    for job in workers + threads:
        job.start()
    for job in workers + threads:
        job.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0]

    _, batch, consumed = parsed(metrics)
    assert consumed == 1 + 5 * 200 and batch.bad_lines == 0 and batch.bad_values == 0
    assert len(batch.rows) == 1 + 5 * 200 * 150


def test_importing_it_loads_only_json(tmp_path):
    script = ("import sys; before = set(sys.modules); sys.path.insert(0, sys.argv[1]); import workbench_log\n"
              "print(' '.join(sorted(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-c", script, str(RUNTIME)], capture_output=True, text=True, timeout=30)

    loaded = set(done.stdout.split())
    assert "workbench_log" in loaded
    assert {name for name in loaded if name.split(".")[0] not in ("json", "_json", "workbench_log")} == set()
