"""Deployments (issue 12), on this machine's engine with the mnist-numpy sample (its image built once):
  1. promote → healthy and serving: `workbench deploy digits:1` end to end, the image already there;
  2. a switch to v2 under 50 requests/s: failed requests, p99 latency in the 5 s before and during it;
  3. rollback: `workbench deployments rollback` end to end (the 2 s drain of the old version included),
     and until the endpoint answers from the old version;
  4. (issue 21) what the smoke request adds (the sample's POST /predict straight at the version), the read of
     the proxy's metrics behind `deployments show` (median of 10), a canary of 10 s promoted by the watcher
     (deploy → verdict), and the live container stopped from outside: until callers get a 503, and how long
     those answers take.

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
import urllib.error
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
        extra = trust_figures(url, port)
        before = [lat for sent, lat, ok in samples if switch_started - 5 <= sent < switch_started and ok]
        during = [lat for sent, lat, ok in samples if switch_started <= sent <= switch_ended and ok]
        failed = sum(1 for _, _, ok in samples if not ok)
        print(json.dumps({
            "1_promote_to_serving_s": round(promote, 2),
            "2_switch": {"requests": len(samples), "failed": failed, "rate_per_s": args.rate,
                         "switch_s": round(switch_ended - switch_started, 2),
                         "p99_before_ms": round(p99(before) * 1000, 1), "p99_during_ms": round(p99(during) * 1000, 1)},
            "3_rollback_s": round(rollback, 2),
            **extra,
            "targets": "promote <= 2 s with the image there; 0 failed; rollback <= 5 s; smoke <= 0.5 s; "
                       "metrics read <= 0.2 s; dead upstream out of rotation <= 2 s"}, indent=2))
    finally:
        subprocess.run([sys.executable, "-m", "workbench", "deployments", "stop", "digits", "--remove"],
                       capture_output=True)


def trust_figures(url: str, port: int) -> dict:
    import docker

    from workbench.projects.spec import load_spec
    from workbench.serving import serving
    from workbench.serving.health import local_http
    from workbench.serving.smoke import smoke_check

    shown = json.loads(wb("deployments", "show", "digits", "--json"))
    client = docker.from_env()
    live = client.containers.get(shown["live_container"])
    smoke = load_spec(Path(os.environ["WORKBENCH_HOME"]) / "mnist").deploy.smoke
    started = time.monotonic()
    failed = smoke_check(local_http, serving.address(live), 8000, smoke)
    smoke_s = time.monotonic() - started
    reads = [json.loads(wb("deployments", "show", "digits", "--json"))["traffic"]["read_ms"] for _ in range(10)]
    started = time.monotonic()
    wb("deploy", "digits:2", "--machine", "local", "--canary", "10", "--canary-for", "10s")
    deadline = time.monotonic() + 60
    while json.loads(wb("deployments", "show", "digits", "--json")).get("canary") and time.monotonic() < deadline:
        time.sleep(0.5)
    canary_s = time.monotonic() - started
    live = client.containers.get(json.loads(wb("deployments", "show", "digits", "--json"))["live_container"])
    stopped = time.monotonic()  # from the stop asked (it returns once the container is down)
    live.stop(timeout=1)
    answers = []
    while time.monotonic() - stopped < 10:
        sent = time.monotonic()
        try:
            predict(url)
            code = 200
        except urllib.error.HTTPError as exc:
            code = exc.code
        except Exception:  # noqa: BLE001
            code = 0
        answers.append((sent - stopped, time.monotonic() - sent, code))
        if code in (502, 503) and len([a for a in answers if a[2] in (502, 503)]) >= 5:
            break
        time.sleep(0.05)
    first_503 = next((a[0] + a[1] for a in answers if a[2] in (502, 503)), None)
    return {"4_smoke_request_s": round(smoke_s, 3), "4_smoke_passed": failed is None,
            "4_metrics_read_ms_median": statistics.median(reads),
            "4_canary_10s_deploy_to_verdict_s": round(canary_s, 1),
            "4_dead_upstream_first_503_s": round(first_503, 2) if first_503 is not None else None,
            "4_dead_upstream_503_answer_ms_max": round(max(a[1] for a in answers if a[2] in (502, 503)) * 1000)
            if first_503 is not None else None}


if __name__ == "__main__":
    main()
