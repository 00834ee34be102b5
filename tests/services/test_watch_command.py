"""`workbench watch PATH` in the foreground: a line per trigger, a verdict per run, restart and queue on
busy, Ctrl-C stops cleanly and the runs stay recorded."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

SPEC = """\
[experiments.t]
image = "busybox:latest"
command = ["sh", "run.sh"]
[experiments.t.checks]
acc = ">= 0.9"
[watch]
run = "t"
paths = ["*.sh"]
on_busy = "{on_busy}"
"""
QUICK = 'echo \'{"acc": 0.95}\' >> $WORKBENCH_METRICS\n'


class Watch:
    def __init__(self, root, home):
        env = {**os.environ, "WORKBENCH_HOME": str(home)}
        self.proc = subprocess.Popen([sys.executable, "-m", "workbench", "watch", str(root)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(l.rstrip("\n")) for l in self.proc.stdout], daemon=True).start()

    def expect(self, needle: str, timeout: float = 60) -> str:
        for line in self.seen:
            if needle in line:
                self.seen.remove(line)
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if needle in line:
                return line
            self.seen.append(line)
        raise AssertionError(f"no line with {needle!r}; got {self.seen}")

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)


@pytest.mark.usefixtures("docker_client")
def test_restart_on_busy_and_verdicts(cli, make_project, home):
    root = make_project(SPEC.replace("{on_busy}", "restart"), {"run.sh": "sleep 60\n"})
    watch = Watch(root, home)
    try:
        watch.expect("watching")
        (root / "run.sh").write_text("sleep 60 # still long\n")
        watch.expect("change: run.sh")
        first = watch.expect("started").split()[1]
        time.sleep(1)
        (root / "run.sh").write_text(QUICK)
        assert f"cancelling run {first}" in watch.expect("restarting")
        second = watch.expect("started").split()[1]
        verdict = watch.expect(f"run {second} succeeded")
        assert "checks PASS" in verdict and "acc=0.95" in verdict
    finally:
        assert watch.interrupt() == 0
    assert "stopped watching (2 run(s) recorded)" in watch.expect("stopped watching")
    statuses = {r["id"]: r["status"] for r in cli("runs", "list", "--json").json()}
    assert statuses == {first: "cancelled", second: "succeeded"}


@pytest.mark.usefixtures("docker_client")
def test_queue_on_busy_runs_once_more_after(cli, make_project, home):
    root = make_project(SPEC.replace("{on_busy}", "queue"), {"run.sh": "sleep 3\n" + QUICK})
    watch = Watch(root, home)
    try:
        watch.expect("watching")
        (root / "run.sh").write_text("sleep 3 # a\n" + QUICK)
        watch.expect("change: run.sh")
        first = watch.expect("started").split()[1]
        (root / "run.sh").write_text("sleep 1 # b\n" + QUICK)
        assert "one run queued" in watch.expect("change: run.sh")
        watch.expect(f"run {first} succeeded")
        second = watch.expect("started").split()[1]
        assert second != first
        watch.expect(f"run {second} succeeded")
    finally:
        assert watch.interrupt() == 0
    assert len(cli("runs", "list", "--json").json()) == 2


def test_watch_without_a_watch_table_is_one_line(cli, make_project):
    from helpers import assert_one_line_error

    root = make_project('[experiments.t]\nimage = "busybox:latest"\ncommand = ["true"]\n')
    assert_one_line_error(cli("watch", str(root)), "no [watch] table")
