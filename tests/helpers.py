"""Helpers shared by the tests (imported as `helpers`; pytest's conftest modules are not importable by
name from several folders without clashing)."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_projects"
# real H100 captures kept in this repository (where they came from: tests/fixtures/README.md)
GPU_FIXTURES = REPO / "tests" / "fixtures" / "gpu" / "h100-80gb"
# A busybox experiment that prints `line I` and writes metric x=I, N times, PAUSE seconds apart.
COUNTING_SPEC = r"""
[project]
name = "counting"
[experiments.count]
image = "busybox:latest"
command = ["sh", "-c", "i=1; while [ $i -le {n} ]; do echo line $i; echo '{\"step\": '$i', \"x\": '$i'}' >> $WORKBENCH_METRICS; sleep {pause}; i=$((i+1)); done"]
params = { n = 30, pause = 0.1 }
"""
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skips locally when infrastructure is missing; under CI=true a missing piece is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}: .ci/infra.sh should have provided it")
    pytest.skip(reason)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.code == 1, (result.code, result.out, result.err)
    lines = [l for l in result.err.splitlines() if l.strip()]
    error_lines = [l for l in lines if l.startswith("workbench: error:")]
    assert len(error_lines) == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in error_lines[0], (needle, error_lines[0])


def wait_for(predicate, timeout: float = 30, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def background_pids(home, verbs: tuple[bytes, ...] = (b"_dispatch", b"_follow")) -> list[int]:
    """The pids of the detached Workbench processes (dispatchers, followers) of the data dir `home`."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                argv = open(f"/proc/{entry.name}/cmdline", "rb").read().split(b"\0")
                environ = open(f"/proc/{entry.name}/environ", "rb").read().split(b"\0")
            except OSError:
                continue
            if any(verb in argv for verb in verbs) and f"WORKBENCH_HOME={home}".encode() in environ:
                found.append(int(entry.name))
    return found


def dispatcher_pids(home) -> list[int]:
    """The pids of the detached dispatchers (`workbench _dispatch`) of the data dir `home`."""
    return background_pids(home, (b"_dispatch",))


def free_port() -> int:
    """A TCP port nothing listens on now (for an endpoint a test publishes)."""
    import socket

    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def tcp_bytes_acked(sock) -> int:
    """Bytes this TCP connection has sent and the peer acknowledged (the kernel's tcp_info
    tcpi_bytes_acked): what really crossed the wire, SSH framing and all."""
    import socket
    import struct

    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    return struct.unpack_from("=Q", info, 120)[0]


def sha256_of(path) -> str:
    """sha256 of a file's bytes, read a MiB at a time (holes read as zeros)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def disk_used(folder) -> int:
    """What `du` counts: allocated blocks of every file below `folder`, each inode once."""
    seen, used = set(), 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                used += st.st_blocks * 512
    return used


class Load:
    """`rate` calls a second of `send` (each on a thread of its own, so a slow answer never delays the next
    request) while the `with` block runs. `samples`: (sent at, latency, *what send returned), or, when it
    raised, (sent at, latency, *failed(exception))."""

    def __init__(self, send, rate: float = 50, failed=lambda exc: (0, repr(exc))) -> None:
        self.send, self.rate, self.failed_as = send, rate, failed
        self.samples: list[tuple] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._loop = threading.Thread(target=self._run, daemon=True)

    def _one(self) -> None:
        sent = time.monotonic()
        try:
            result = tuple(self.send())
        except Exception as exc:  # noqa: BLE001 - counted
            result = tuple(self.failed_as(exc))
        with self._lock:
            self.samples.append((sent, time.monotonic() - sent, *result))

    def _run(self) -> None:
        while not self._stop.is_set():
            thread = threading.Thread(target=self._one, daemon=True)
            thread.start()
            self._threads.append(thread)
            time.sleep(1 / self.rate)

    def __enter__(self) -> "Load":
        self._loop.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._loop.join()
        for thread in self._threads:
            thread.join(timeout=15)


# A tqdm-like bar redrawn N times as fast as Python writes, with lines around it (see the file's docstring).
PROGRESS_BARS = REPO / "tests" / "fixtures" / "progress_bars.py"


def assert_progress_bars_stored(logs: bytes, n: int) -> float:
    """The stored log (logs.txt) of `progress_bars.py N`: valid UTF-8, every line whole, each bar once in its
    last state and nothing else. Returns the rate the program redrew its bar at (per second)."""
    import re

    from workbench.logformat import split_line

    records = [split_line(line)[1:] for line in logs.decode("utf-8").split("\n")[:-1]]  # strict: valid UTF-8
    out = [text for stream, text in records if stream == "out"]
    err = [text for stream, text in records if stream == "err"]
    shown = f"{len(records)} lines: {[text[:60] for _, text in records[:8]]}"
    assert out[:2] == ["before the bar", "é" * 30_000], shown
    assert len(out) == 3, shown
    rate = re.fullmatch(rf"after the bar: {n + 1} redraws, (\d+) per second", out[2])
    assert rate, shown
    assert err == [f"loss {1 / (n + 1):.6f}: 100%|{'█' * 20}| {n}/{n}", f"eval ✓: 100%|{'█' * 20}| 1000/1000"], shown
    return float(rate.group(1))
