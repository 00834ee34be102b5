"""Issue 22, item 1: output read in pieces of any size becomes the same whole lines. A piece boundary never
cuts a line's `\\r` redraws into lines of their own nor a multi-byte character in two; a reader started
again from any offset it gave stores every line exactly once."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pytest

from workbench.execution.backends import process as process_executor
from workbench.execution.backends.process import ProcessExecutor
from workbench.execution.base import BackendSettings, Handle, Launch, Machine
from workbench.execution.hosts import LocalHost
from workbench.execution.loglines import LineAssembler, char_boundary
from workbench.logformat import format_line, split_line

FRAMES = [f"\rloss {1 / (i + 1):.4f}: {'█' * (i // 4)}{'▏▎▍▌▋▊▉'[i % 7]}| {i}/40" for i in range(41)]
SAMPLE = ("start ✓\n" + "".join(FRAMES) + "\n" + "ünïcødé line\n" + "\rlast ██▉ 1/2\rlast ███ 2/2\r").encode()
EXPECTED = ["start ✓", FRAMES[-1][1:], "ünïcødé line", "last ███ 2/2"]


def stored(lines: list[bytes]) -> list[str]:
    """The texts logs.txt would hold for these lines (format_line keeps a line's last redraw)."""
    return [split_line(format_line("t", "out", line).decode("utf-8"))[2] for line in lines]


def assemble(pieces: list[bytes]) -> list[bytes]:
    assembler = LineAssembler()
    lines = [line for piece in pieces for line in assembler.feed(piece)]
    return lines + assembler.finish()


def test_a_sample_cut_at_any_byte_gives_the_same_lines():
    for cut in range(len(SAMPLE) + 1):
        assert stored(assemble([SAMPLE[:cut], SAMPLE[cut:]])) == EXPECTED, cut


def test_random_piece_sizes_give_the_same_lines():
    rng = random.Random(22)
    for _ in range(300):
        pieces, at = [], 0
        while at < len(SAMPLE):
            size = rng.choice((1, 2, 3, rng.randint(1, 40), rng.randint(1, len(SAMPLE))))
            pieces.append(SAMPLE[at:at + size])
            at += size
        assert stored(assemble(pieces)) == EXPECTED


def test_starting_again_from_what_was_carried_stores_each_line_once():
    for cut in range(len(SAMPLE) + 1):
        first = LineAssembler()
        before = first.feed(SAMPLE[:cut])
        again = LineAssembler()
        after = again.feed(SAMPLE[cut - first.carried:]) + again.finish()
        assert stored(before + after) == EXPECTED, cut
        assert first.carried <= max(len(f.encode()) for f in FRAMES) + 1  # one redraw kept, never the whole bar


def test_a_line_that_never_ends_comes_in_pieces_cut_between_characters():
    assembler = LineAssembler(piece=64)
    text = "é█" * 1000
    lines = [line for i in range(0, len(text.encode()), 7) for line in assembler.feed(text.encode()[i:i + 7])]
    lines += assembler.finish()
    assert all(len(line) <= 64 for line in lines) and len(lines) > 10
    assert "".join(line.decode("utf-8") for line in lines) == text  # strict: no piece ends inside a character
    big = LineAssembler(piece=64)  # reads far larger than a piece (1 MiB reads gave 2 MiB pieces)
    pieces = big.feed(text.encode()[:1000]) + big.feed(text.encode()[1000:]) + big.finish()
    assert all(len(piece) <= 64 for piece in pieces)
    assert "".join(piece.decode("utf-8") for piece in pieces) == text


@pytest.mark.parametrize("data, boundary", [(b"abc", 3), (b"ab\xc3", 2), (b"\xc3\xa9", 2), (b"a\xe2\x96", 1),
                                            (b"\xe2\x96\x88", 3), (b"\xf0\x9f\x98", 0), (b"", 0)])
def test_char_boundary(data, boundary):
    assert char_boundary(data) == boundary


WRITER = """
import os, random, sys, time
data, rng = open(sys.argv[1], "rb").read(), random.Random(int(sys.argv[2]))
at = 0
while at < len(data):
    size = rng.randint(1, 9)
    os.write(1, data[at:at + size])
    at += size
    if rng.random() < 0.2:
        time.sleep(0.001)
"""


@pytest.mark.parametrize("chunk", [3, 7, 4096])
def test_the_process_executor_reads_a_bar_written_in_pieces_into_whole_lines(tmp_path, monkeypatch, chunk):
    """A real process writes the sample a few bytes at a time while it is followed, with reads of `chunk`
    bytes; every offset the reader gave, read from again after the run, gives exactly the lines after it."""
    monkeypatch.setattr(process_executor, "LOG_CHUNK", chunk)
    monkeypatch.setattr(process_executor, "FOLLOW_POLL", 0.001)
    (tmp_path / "sample").write_bytes((SAMPLE[:-1] + b"\n") * 2 + SAMPLE)
    (tmp_path / "writer.py").write_text(WRITER)
    ex = ProcessExecutor(Machine("local", "local"), LocalHost(tmp_path / "runs"), BackendSettings())
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    handle = ex.submit(Launch(run_id="r1", project="p", argv=[sys.executable, "writer.py", "sample", str(chunk)],
                              env={}, snapshot_dir=str(tmp_path), run_dir=str(run_dir)))
    chunks = list(ex.read_logs(handle, "0", follow=True))
    while ex.status(handle).state == "running":
        time.sleep(0.01)
    texts = [split_line(line)[2] for c in chunks for line in c.data.decode("utf-8").split("\n")[:-1]]
    assert texts == EXPECTED * 3
    seen = 0
    for c in chunks:
        seen += c.data.count(b"\n")
        rest = b"".join(again.data for again in ex.read_logs(handle, c.offset, follow=False))
        assert [split_line(line)[2] for line in rest.decode("utf-8").split("\n")[:-1]] == texts[seen:]


def test_the_line_being_redrawn_never_shows_half_a_character():
    """What `progress()` shows of a live bar (the tail of a file, or of an attach stream, cut anywhere)."""
    from workbench.execution.base import redrawn_tail

    data = "start\n\rloss 0.5: ██▌| 5/10\rloss 0.4: ███".encode()
    shown = [redrawn_tail(data[:cut]) for cut in range(len(data) + 1)]
    assert not [text for text in shown if "\ufffd" in text]
    assert shown[-1] == "loss 0.4: ███" and shown[-2] == shown[-3] == shown[-4] == "loss 0.4: ██"


def test_docker_joins_its_16k_records_and_a_read_from_any_offset_it_gave_stores_each_line_once(
        docker_client, monkeypatch):
    """The engine cuts a line into 16 KiB records; every chunk's offset, read from again, gives exactly the
    lines after it (a batch is handed on at every record here, so offsets fall inside a bar's records)."""
    from helpers import PROGRESS_BARS
    from workbench.execution.backends import docker as docker_executor
    from workbench.execution.backends.docker import DockerExecutor

    monkeypatch.setattr(docker_executor, "LOG_BATCH_SECONDS", 0.0)
    container = docker_client.containers.run(
        "python:3.11-slim", ["python3", "/bars/progress_bars.py", "5000"], detach=True,
        environment={"PYTHONUNBUFFERED": "1"}, volumes={str(PROGRESS_BARS.parent): {"bind": "/bars", "mode": "ro"}})
    try:
        container.wait(timeout=60)
        ex = DockerExecutor(Machine("local", "local"), LocalHost(None), BackendSettings("test", docker_client=lambda: docker_client))
        handle = Handle("/nonexistent", "local", container=container.id)
        chunks = list(ex.read_logs(handle, "0", follow=False))
        texts = [split_line(line)[2] for c in chunks for line in c.data.decode("utf-8").split("\n")[:-1]]
        assert len(texts) == 5 and f"loss {1 / 5001:.6f}: 100%|{'█' * 20}| 5000/5000" in texts, texts
        assert len({c.offset for c in chunks}) > 20  # offsets inside the bar's records were handed on
        seen = 0
        for c in chunks:
            seen += c.data.count(b"\n")
            rest = b"".join(again.data for again in ex.read_logs(handle, c.offset, follow=False))
            assert sorted(split_line(line)[2] for line in rest.decode("utf-8").split("\n")[:-1]) == sorted(texts[seen:])
    finally:
        container.remove(force=True)


BAR_THEN_LINE = """
import sys, time
print("training", flush=True)
for i in range(20):
    sys.stderr.write(f"\\rstep {i}/20 █"); sys.stderr.flush(); time.sleep(0.05)
sys.stderr.write("\\n"); sys.stderr.flush()
print("done", flush=True)
"""


def test_a_bar_on_stderr_is_stored_before_the_line_printed_after_it(tmp_path, monkeypatch):
    """The bar's line (stderr) ends in the same read as the stdout line printed after it: stored in the order
    they began, the bar stamped when it began (as Docker stamps it), not after `done`."""
    monkeypatch.setattr(process_executor, "FOLLOW_POLL", 0.5)  # the bar's end and `done` in one read
    (tmp_path / "bar.py").write_text(BAR_THEN_LINE)
    ex = ProcessExecutor(Machine("local", "local"), LocalHost(tmp_path / "runs"), BackendSettings())
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    handle = ex.submit(Launch(run_id="r1", project="p", argv=[sys.executable, "bar.py"], env={},
                              snapshot_dir=str(tmp_path), run_dir=str(run_dir)))
    lines = [split_line(line) for c in ex.read_logs(handle, "0", follow=True)
             for line in c.data.decode("utf-8").split("\n")[:-1]]
    assert [text for _, _, text in lines] == ["training", "step 19/20 █", "done"], lines
    assert [stamp for stamp, _, _ in lines] == sorted(stamp for stamp, _, _ in lines)
    assert lines[1][0] < lines[2][0]  # the bar began before `done` was printed


def test_docker_progress_looks_at_a_fast_bar_at_its_pace_not_at_every_redraw(docker_client):
    """`progress()` of a bar redrawn thousands of times a second: about one look every PROGRESS_POLL (each
    yield rewrites progress.txt and redraws the terminal line), where every redraw woke it (439 in 2 s)."""
    import threading

    from helpers import PROGRESS_BARS
    from workbench.execution.backends import docker as docker_executor
    from workbench.execution.backends.docker import DockerExecutor

    container = docker_client.containers.run(
        # 200,000 redraws spread over 5 s (40,000 a second, however fast this machine writes): still going
        # for the whole 2 s watched
        "python:3.11-slim", ["python3", "/bars/progress_bars.py", "200000", "5"], detach=True,
        environment={"PYTHONUNBUFFERED": "1"}, volumes={str(PROGRESS_BARS.parent): {"bind": "/bars", "mode": "ro"}})
    stop = threading.Event()
    try:
        ex = DockerExecutor(Machine("local", "local"), LocalHost(None), BackendSettings("test", docker_client=lambda: docker_client))
        shown, started = [], time.monotonic()
        # (an attach stream made under heavy load has been seen to end at once, with nothing: attached again,
        # as long as the bar runs; what is measured is how often one stream is looked at)
        while not stop.is_set() and time.monotonic() - started < 4.0:
            for line in ex.progress(Handle("/nonexistent", "local", container=container.id), stop):
                shown.append(line)
                if time.monotonic() - started > 2.0:
                    stop.set()
        took = time.monotonic() - started
        assert len(shown) > 3, shown  # it did show the bar moving
        assert len(shown) <= took / docker_executor.PROGRESS_POLL + 3, (len(shown), took)
    finally:
        stop.set()
        container.remove(force=True)


@pytest.mark.parametrize("executor", ["docker", "process"])
def test_run_wait_prints_the_last_line_a_run_ends_without_a_newline(cli, make_project, executor, request):
    """Docker logs such a line as a record of its own at the end; it is completed by the catch-up read after
    the followed one, which `--wait` printed nothing of (stored, never shown)."""
    if executor == "docker":
        request.getfixturevalue("docker_client")
    root = make_project('[experiments.x]\nimage = "busybox:latest"\n'
                        'command = ["sh", "-c", "echo start; sleep 0.3; printf \'final acc 0.93\'"]\n')
    waited = cli("run", str(root), "--executor", executor, "--wait")
    assert waited.code == 0, waited.err
    assert waited.out.splitlines() == ["start", "final acc 0.93"], waited.out
