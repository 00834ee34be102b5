"""Notebook to production, timed (issue 24): the README's walkthrough with sample_projects/mnist-notebook, each
step through the CLI a user types, on one machine (this workstation's engine by default, or an SSH host):

  1. `workbench notebook PROJECT --machine M --json`        JupyterLab up (its URL answers)
  2. in the session: the notebook's parameters cell edited and its training code run in the session's kernel,
     through Jupyter's own REST and kernel-channel websocket (what the browser does)
  3. `workbench sessions stop ID`                            the edited notebook comes back into the project
  4. `workbench run PROJECT --machine M -p lr=0.3 --wait`    the notebook as an experiment
  5. `workbench models register RUN model.npz --name N`
  6. `workbench deploy N:1 --machine M --port P`              healthy, then serving; one /predict answered

Images present (the sample's image, its notebook-runner and lab layers: run it once to warm them). Prints each
step's seconds and the total as JSON. Target: total <= 60 s of machine time (the human part is the typing).

    python benchmarks/notebook_to_production.py [--machine NAME] [--keep]
    python benchmarks/notebook_to_production.py --test-host     # on the remote test host (tests/remote_hosts.py:
                                                                # its own engine behind a loopback sshd; root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]
SAMPLE = REPO / "sample_projects" / "mnist-notebook"
PIXELS = json.loads((SAMPLE / "smoke.json").read_text())


def workbench(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "workbench", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"workbench {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rest(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"{}")


async def execute(base: str, token: str, kernel: str, code: str) -> str:
    """Runs `code` in the kernel over Jupyter's channels websocket (tornado's client: it ships with the
    kernel machinery); the text it printed."""
    from tornado.websocket import websocket_connect

    ws = await websocket_connect(f"ws{base[4:]}/api/kernels/{kernel}/channels?token={token}")
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "bench", "session": uuid.uuid4().hex,
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    printed = []
    while True:
        message = json.loads(await ws.read_message())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = message["header"]["msg_type"]
        if kind == "stream":
            printed.append(message["content"]["text"])
        elif kind == "error":
            raise SystemExit(f"the session's kernel failed: {message['content']['evalue']}")
        elif kind == "status" and message["content"]["execution_state"] == "idle":
            ws.close()
            return "".join(printed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machine", default="local")
    parser.add_argument("--keep", action="store_true", help="leave the data dir and project copy for a look")
    parser.add_argument("--test-host", action="store_true", help="on the remote test host, as machine gpu-a")
    args = parser.parse_args()
    if not args.test_host:
        walk(args.machine, "127.0.0.1", args.keep)
        return
    from helpers import Result
    from remote_hosts import State, acquire_lock, build, clean_up_after_crashed_session, register, release_lock, tear_down

    lock, state, env = acquire_lock(), State(), None
    try:
        clean_up_after_crashed_session()
        env = build(state)
        home = Path(tempfile.mkdtemp(prefix="wb-bench-nb-"))
        os.environ["WORKBENCH_HOME"] = str(home)

        def cli(*argv: str, timeout: float = 300) -> Result:
            done = subprocess.run([sys.executable, "-m", "workbench", *argv], capture_output=True, text=True,
                                  timeout=timeout)
            return Result(done.returncode, done.stdout, done.stderr)

        register(cli, "gpu-a", env.gpu, env.user_key, extra=("--dir", str(home / "host")))
        print("first, images absent on the host (they are built there):", file=sys.stderr)
        walk("gpu-a", env.gpu.address, keep=True)
        print("again, images present:", file=sys.stderr)
        walk("gpu-a", env.gpu.address, args.keep)
    finally:
        tear_down(state)
        release_lock(lock)


def walk(machine: str, address: str, keep: bool) -> None:
    home = Path(tempfile.mkdtemp(prefix="wb-bench-nb-"))
    env = {**os.environ, "WORKBENCH_HOME": os.environ.get("WORKBENCH_HOME", str(home / "data"))}
    project = home / "mnist-notebook"
    shutil.copytree(SAMPLE, project)
    steps: dict[str, float] = {}

    def step(name: str, started: float) -> None:
        steps[name] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    session = json.loads(workbench(env, "notebook", str(project), "--machine", machine, "--json").stdout)
    step("open_session", started)

    started = time.perf_counter()
    base = session["url"].split("/lab")[0]
    token = session["token"]
    notebook = rest(f"{base}/api/contents/train.ipynb?token={token}")
    cells = notebook["content"]["cells"]
    params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    params["source"] = params["source"].replace("epochs = 10", "epochs = 12")
    rest(f"{base}/api/contents/train.ipynb?token={token}", "PUT",
         {"type": "notebook", "format": "json", "content": notebook["content"]})
    kernel = rest(f"{base}/api/kernels?token={token}", "POST", {"name": "python3"})["id"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    printed = asyncio.run(execute(base, token, kernel, code))
    assert "epoch  12/12" in printed, printed[-500:]
    step("train_in_session", started)

    started = time.perf_counter()
    stopped = json.loads(workbench(env, "sessions", "stop", session["id"], "--json").stdout)
    step("stop_session", started)
    assert "epochs = 12" in (project / "train.ipynb").read_text(), stopped

    started = time.perf_counter()
    run = json.loads(workbench(env, "run", str(project), "--machine", machine, "-p", "lr=0.3", "--wait",
                               "--json").stdout)
    step("run_as_experiment", started)
    assert run["status"] == "succeeded", run

    started = time.perf_counter()
    workbench(env, "models", "register", run["id"], "model.npz", "--name", "digits-nb")
    step("register_model", started)

    port = free_port()
    started = time.perf_counter()
    workbench(env, "deploy", "digits-nb:1", "--machine", machine, "--port", str(port))
    host = address
    request = urllib.request.Request(f"http://{host}:{port}/predict", data=json.dumps(PIXELS).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        digit = json.loads(answer.read())["digit"]
    step("deploy_and_first_prediction", started)

    workbench(env, "deployments", "stop", "digits-nb", "--remove")
    print(json.dumps({"machine": machine, "steps_s": steps, "total_s": round(sum(steps.values()), 2),
                      "predicted_digit": digit, "brought_back": stopped.get("brought_back"),
                      "target": "total <= 60 s with images present"}, indent=2))
    if not keep:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
