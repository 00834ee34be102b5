"""Deployments (issue 12), on this machine's engine with the mnist-numpy sample (its image built once):
  1. promote → healthy and serving: `workbench deploy digits:1` end to end, the image already there;
  2. a switch to v2 under 50 requests/s: failed requests, p99 latency in the 5 s before and during it;
  3. rollback: `workbench deployments rollback` end to end (the 2 s drain of the old version included),
     and until the endpoint answers from the old version.

    python benchmarks/deployments.py [--rate 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIGIT = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8,
         0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]


def wb(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"workbench {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def predict(url: str) -> None:
    body = json.dumps({"pixels": DIGIT}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, body, {"Content-Type": "application/json"}),
                                timeout=10) as answer:
        answer.read()


class Load(threading.Thread):
    def __init__(self, url: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.rate = url, rate
        self.samples: list[tuple[float, float, bool]] = []  # (sent at, latency, ok)
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def one(self) -> None:
        sent = time.monotonic()
        try:
            predict(self.url)
            ok = True
        except Exception:  # noqa: BLE001 - counted
            ok = False
        with self.lock:
            self.samples.append((sent, time.monotonic() - sent, ok))

    def run(self) -> None:
        while not self.stop.is_set():
            threading.Thread(target=self.one, daemon=True).start()
            time.sleep(1 / self.rate)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="wb-bench-deploy-"))
    os.environ["WORKBENCH_HOME"] = str(home)
    project = home / "mnist"
    shutil.copytree(REPO / "sample_projects" / "mnist-numpy", project)
    for epochs in (8, 12):
        run = json.loads(wb("run", str(project), "-p", f"epochs={epochs}", "--wait", "--json"))
        wb("models", "register", run["id"], "model.npz", "--name", "digits")
    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/predict"
    try:
        started = time.monotonic()
        wb("deploy", "digits:1", "--machine", "local", "--port", str(port))
        promote = time.monotonic() - started
        predict(url)
        load = Load(url, args.rate)
        load.start()
        time.sleep(5)
        switch_started = time.monotonic()
        wb("deploy", "digits:2", "--machine", "local")
        switch_ended = time.monotonic()
        time.sleep(1)
        started = time.monotonic()
        wb("deployments", "rollback", "digits")
        rollback = time.monotonic() - started
        time.sleep(1)
        load.stop.set()
        time.sleep(2)
        with load.lock:
            samples = list(load.samples)
        before = [lat for sent, lat, ok in samples if switch_started - 5 <= sent < switch_started and ok]
        during = [lat for sent, lat, ok in samples if switch_started <= sent <= switch_ended and ok]
        failed = sum(1 for _, _, ok in samples if not ok)
        print(json.dumps({
            "1_promote_to_serving_s": round(promote, 2),
            "2_switch": {"requests": len(samples), "failed": failed, "rate_per_s": args.rate,
                         "switch_s": round(switch_ended - switch_started, 2),
                         "p99_before_ms": round(p99(before) * 1000, 1), "p99_during_ms": round(p99(during) * 1000, 1)},
            "3_rollback_s": round(rollback, 2),
            "targets": "promote <= 10 s; 0 failed; rollback <= 5 s"}, indent=2))
    finally:
        subprocess.run([sys.executable, "-m", "workbench", "deployments", "stop", "digits", "--remove"],
                       capture_output=True)


if __name__ == "__main__":
    main()
