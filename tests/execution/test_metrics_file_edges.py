"""Metrics file edge cases (issue #8, item 10): a file truncated or rewritten under the reader, lines of any
length, a line still being written, a metrics file that is a link or a fifo. Real files, a real store, the
real ingestor; the last tests through the CLI and the real Docker engine."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from helpers import wait_for
from workbench.execution import offsets
from workbench.execution.offsets import MAX_LINE, SKIPPED_LINE, read_file_from
from workbench.execution.ingest import RunIngestor
from workbench.store import open_store

REWRITTEN = "metrics file was truncated or rewritten at byte"


class FileExecutor:
    """The metrics half of an executor over one local file, as the docker and process executors read it."""
    name = "file"

    def __init__(self, path):
        self.path = path

    def read_metrics(self, handle, offset, limit, final):
        return read_file_from(self.path, offset, limit, final)


@pytest.fixture
def ingest(tmp_path):
    """(metrics path, ingest(final=False) -> points added, store, seq) for one run."""
    store = open_store(tmp_path / "wb.db")
    seq = store.insert_run({"id": "r1", "project": "p", "project_path": "/p", "experiment": "e",
                            "status": "running", "machine": "local", "executor": "process",
                            "created_at": time.time(), "handle": {}})
    path = tmp_path / "metrics.jsonl"
    ingestor = RunIngestor(store, FileExecutor(path), store.get_run("r1"), tmp_path / "run")
    assert ingestor.acquire()
    yield path, ingestor.ingest_metrics, store, seq
    ingestor.release()


def lines(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def warnings(store, needle):
    return [e["message"] for e in store.events("r1") if e["kind"] == "warning" and needle in e["message"]]


def run_row(store, seq):
    return tuple(store.query("SELECT metric_points, bad_metric_lines, bad_metric_values FROM runs WHERE seq = ?",
                             (seq,))[0])


# truncated or rewritten ---------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["regrown", "emptied"])
def test_a_rewritten_metrics_file_is_ingested_again_from_its_start(ingest, how):
    path, ingest_metrics, store, seq = ingest
    path.write_bytes(lines(*({"loss": i} for i in range(1000))))
    assert ingest_metrics(final=False) == 1000
    old_size = path.stat().st_size
    rewrite = lines(*({"loss": i, "pad": 0.0} for i in range(1000, 2000)))
    if how == "regrown":  # truncated and already longer than before when the reader looks again
        path.write_bytes(rewrite)
        assert path.stat().st_size > old_size
    else:
        path.write_bytes(b"")
        assert ingest_metrics(final=False) == 0
        assert ingest_metrics(final=False) == 0
        with open(path, "ab") as fh:
            fh.write(rewrite)
    assert ingest_metrics(final=True) == 2000
    history = store.metric_history(seq, "loss")
    # step-less lines go on counting their ordinals: the rewritten ones don't land on the first ones' steps
    assert history == [(i, float(i)) for i in range(2000)]
    assert warnings(store, REWRITTEN) == [
        f"{REWRITTEN} {old_size}; ingesting it again from its start"]
    assert run_row(store, seq)[0] == 3000  # 2000 losses + 1000 pads


def test_appending_is_never_taken_for_a_rewrite(ingest):
    path, ingest_metrics, store, seq = ingest
    for i in range(50):
        with open(path, "ab") as fh:
            fh.write(lines({"step": i, "v": i}) + b'{"step": ')  # a line still being written
        ingest_metrics(final=False)
        with open(path, "ab") as fh:
            fh.write(b'%d, "w": 1}\n' % i)
    ingest_metrics(final=True)
    assert [s for s, _ in store.metric_history(seq, "v")] == list(range(50))
    assert [s for s, _ in store.metric_history(seq, "w")] == list(range(50))
    assert not warnings(store, REWRITTEN)


def test_plain_byte_offsets_of_older_versions_still_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    first = b'{"a": 1}\n'
    path.write_bytes(first + b'{"a": 2}\n')
    chunk = read_file_from(path, str(len(first)), 1 << 20, False)
    assert chunk.data == b'{"a": 2}\n' and chunk.rewritten_at is None
    assert chunk.offset.startswith(f"{path.stat().st_size}:")
    shorter = read_file_from(path, "999", 1 << 20, False)
    assert shorter.rewritten_at == 999 and shorter.data == path.read_bytes()


# lines of any length ----------------------------------------------------------------------------
def test_a_long_valid_line_is_one_line(ingest):
    path, ingest_metrics, store, seq = ingest
    long_line = b'{"x": 2' + b" " * 2_600_000 + b"}\n"  # 2.6 MB of valid JSON
    path.write_bytes(b'{"x": 1}\n' + long_line + b'{"x": 3}\n')
    ingest_metrics(final=True)
    assert store.metric_history(seq, "x") == [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert run_row(store, seq) == (3, 0, 0)


def test_a_bad_line_of_any_length_is_one_bad_line(ingest):
    path, ingest_metrics, store, seq = ingest
    with open(path, "wb") as fh:
        fh.write(b'{"v": 0}\n' + b"x" * 50_000_000 + b"\n")   # 50 MB: read whole, not JSON
        fh.write(b'{"v": 2}\n' + b"y" * (MAX_LINE + 10) + b"\n")  # over the maximum: skipped unread
        fh.write(b'{"v": 4}\n')
    ingest_metrics(final=True)
    assert store.metric_history(seq, "v") == [(0, 0.0), (2, 2.0), (4, 4.0)]  # ordinals not shifted
    assert run_row(store, seq) == (3, 2, 0)


def test_a_line_being_written_waits_for_its_newline(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"x": 1, "pad": "' + b"a" * 3_000_000)  # longer than a read, no newline yet
    waiting = read_file_from(path, "0", 1 << 20, False)
    assert waiting.data == b"" and waiting.offset.startswith("0:")
    with open(path, "ab") as fh:
        fh.write(b'"}\n')
    whole = read_file_from(path, waiting.offset, 1 << 20, False)
    assert json.loads(whole.data)["x"] == 1 and whole.data.endswith(b"\n")
    assert whole.offset.startswith(f"{path.stat().st_size}:")


def test_an_overlong_line_still_being_written_is_skipped_once(ingest, monkeypatch):
    path, ingest_metrics, store, seq = ingest
    monkeypatch.setattr(offsets, "MAX_LINE", 3 << 20)
    path.write_bytes(b'{"v": 0}\n' + b"z" * (4 << 20))
    ingest_metrics(final=False)
    for _ in range(3):  # it goes on growing; read from where the reader left it, never counted again
        with open(path, "ab") as fh:
            fh.write(b"z" * (2 << 20))
        ingest_metrics(final=False)
    offset = store.get_offset(seq, "metrics").offset
    assert offset.endswith(":skip") and int(offset.split(":")[0]) == path.stat().st_size
    with open(path, "ab") as fh:
        fh.write(b'zz"}\n{"v": 2}\n')
    ingest_metrics(final=True)
    assert store.metric_history(seq, "v") == [(0, 0.0), (2, 2.0)]
    assert run_row(store, seq) == (2, 1, 0)


def test_an_overlong_last_line_of_an_ended_run_is_one_bad_line(tmp_path, monkeypatch):
    monkeypatch.setattr(offsets, "MAX_LINE", 2 << 20)
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"q" * (5 << 20))
    chunk = read_file_from(path, "0", 1 << 20, True)
    assert chunk.data == SKIPPED_LINE and chunk.eof and chunk.offset.startswith(f"{5 << 20}:")


# not a regular file -----------------------------------------------------------------------------
def test_a_metrics_file_that_is_a_link_is_not_followed(ingest, tmp_path):
    path, ingest_metrics, store, seq = ingest
    host_file = tmp_path / "host.jsonl"
    host_file.write_bytes(lines({"stolen": 1.0}, {"stolen": 2.0}))
    path.symlink_to(host_file)
    for _ in range(3):
        assert ingest_metrics(final=False) == 0
    assert run_row(store, seq)[0] == 0 and store.metric_names(seq) == []
    assert warnings(store, "metrics.jsonl") == ["metrics.jsonl is a symbolic link; not followed"]


def test_a_metrics_file_that_is_a_fifo_does_not_hang_ingestion(ingest):
    path, ingest_metrics, store, seq = ingest
    os.mkfifo(path)
    done = []
    worker = threading.Thread(target=lambda: done.append(ingest_metrics(final=True)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done == [0]
    assert warnings(store, "metrics.jsonl") == ["metrics.jsonl is not a regular file; not read"]


# through the CLI and Docker ---------------------------------------------------------------------
REWRITE_SCRIPT = r"""
i=0; while [ $i -lt 1000 ]; do echo "{\"loss\": $i}"; i=$((i+1)); done > $WORKBENCH_METRICS
n=0; while [ ! -e $WORKBENCH_OUTPUT/go ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done
rm -f $WORKBENCH_OUTPUT/go
while [ $i -lt 2000 ]; do echo "{\"loss\": $i, \"pad\": 0.5}"; i=$((i+1)); done > /tmp/new.jsonl
cat /tmp/new.jsonl > $WORKBENCH_METRICS
"""


def _spec(script: str) -> str:
    return '[experiments.m]\nimage = "busybox:latest"\ncommand = ' + json.dumps(["sh", "-c", script]) + "\n"


@pytest.mark.usefixtures("docker_client")
def test_docker_run_that_rewrites_its_metrics_file_keeps_every_point(cli, make_project, home):
    root = make_project(_spec(REWRITE_SCRIPT))
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    waiter = subprocess.Popen([sys.executable, "-m", "workbench", "run", str(root), "--wait", "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def first_half_in():
            try:
                row = sqlite3.connect(home / "workbench.db").execute("SELECT id, metric_points FROM runs").fetchone()
            except sqlite3.OperationalError:
                return None
            return row if row and row[1] == 1000 else None
        run_id, _ = wait_for(first_half_in, timeout=120)
        (home / "runs" / run_id / "out" / "go").touch()  # the experiment rewrites its file only now
        out, err = waiter.communicate(timeout=120)
    finally:
        if waiter.poll() is None:
            waiter.send_signal(signal.SIGKILL)
    assert waiter.returncode == 0, err
    run = cli("runs", "show", run_id, "--json").json()
    assert run["status"] == "succeeded"
    assert run["metrics"]["loss"] == {"points": 2000, "last": 1999.0, "min": 0.0, "max": 1999.0}
    assert run["metrics"]["pad"]["points"] == 1000
    rewritten = [e for e in run["events"] if e["kind"] == "warning" and REWRITTEN in e["message"]]
    assert len(rewritten) == 1


@pytest.mark.usefixtures("docker_client")
def test_docker_run_with_huge_metric_lines(cli, make_project):
    script = (
        'echo \'{"v": 0}\' >> $WORKBENCH_METRICS; '
        # a valid 2.6 MB line (its string value is one non-numeric value)
        'printf \'{"v": 1, "pad": "\' >> $WORKBENCH_METRICS; '
        "head -c 2600000 /dev/zero | tr '\\0' a >> $WORKBENCH_METRICS; "
        'printf \'"}\\n\' >> $WORKBENCH_METRICS; '
        # a bad 50 MB line, then one over the 64 MiB maximum
        "head -c 50000000 /dev/zero | tr '\\0' x >> $WORKBENCH_METRICS; echo >> $WORKBENCH_METRICS; "
        "head -c 70000000 /dev/zero | tr '\\0' y >> $WORKBENCH_METRICS; echo >> $WORKBENCH_METRICS; "
        'echo \'{"v": 4}\' >> $WORKBENCH_METRICS'
    )
    result = cli("run", str(make_project(_spec(script))), "--wait", "--json")
    assert result.code == 0, result.err
    run = cli("runs", "show", result.json()["id"], "--json").json()
    assert run["status"] == "succeeded"
    assert run["metrics"]["v"] == {"points": 3, "last": 4.0, "min": 0.0, "max": 4.0}
    assert run["bad_metric_lines"] == 2 and run["bad_metric_values"] == 1
