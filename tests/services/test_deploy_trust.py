"""Deployments you can leave alone (issue 21), on this machine's engine with a stdlib server whose model
file says how it behaves: a version whose /health answers 200 while /predict fails is refused by its smoke
request; a canary gets its share and is promoted by the deployment watcher (a detached process), or rolled
back by it when it fails; the watcher killed mid-canary (the workstation asleep) leaves the split held by the
proxy and the next command says so; a proxy restart keeps the split; the live container stopped from
outside gives callers a fast 503 and an event with no command run; the token, the bind address, the port
checks and the records a refused deploy leaves (none)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import Load as load_helper
from helpers import assert_one_line_error, background_pids, free_port, wait_for

pytestmark = pytest.mark.docker

SERVER = """
import http.server, json, sys, threading
model = open(sys.argv[1]).read()
answered = {"n": 0}
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def send(self, code, payload):
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self.send(200 if self.path == "/health" else 404, {"model": model})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            answered["n"] += 1
            n = answered["n"]
        if model == "broken" or (model == "sour" and n > 1):  # sour: passes its smoke request, then fails
            self.send(500, {"error": "shapes (64,) and (32,) not aligned"})
        else:
            self.send(200, {"digit": 7, "model": model})
http.server.ThreadingHTTPServer.request_queue_size = 128  # a real server's backlog (the stdlib's is 5)
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
"""
TRAIN = "import os, sys; open(os.path.join(os.environ['WORKBENCH_OUTPUT'], 'model.txt'), 'w').write(sys.argv[1])"
SPEC = """
[experiments.train]
image = "python:3.11-slim"
command = ["python3", "train.py", "{tag}"]
params = { tag = "a" }
artifacts = ["model.txt"]

[deploy]
image = "python:3.11-slim"
command = ["python3", "serve.py", "{model}", "{port}"]
health = "/health"
port = 9000
timeout = 20
memory = "64m"
smoke = { path = "/predict", body = '{"pixels": [0]}', expect_json_keys = ["digit"] }
EXTRA
"""


def predict(port: int, token: str | None = None, timeout: float = 5, host: str = "127.0.0.1") -> tuple[int, str | None]:
    """(HTTP status, the model that answered)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"http://{host}:{port}/predict", b'{"pixels": [0]}', headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read()).get("model")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def Load(port: int, rate: float = 20, token: str | None = None, host: str = "127.0.0.1") -> load_helper:
    """`rate` requests/s, each on a new connection: samples (sent at, latency, status, model); no answer is
    status 0."""
    return load_helper(lambda: predict(port, token, host=host), rate, failed=lambda exc: (0, None))


def registered(cli, root: Path, tag: str) -> None:
    run = cli("run", str(root), "-p", f"tag={tag}", "--wait", "--json")
    assert run.code == 0, run.err
    assert cli("models", "register", run.json()["id"], "model.txt", "--name", "m").code == 0


@contextmanager
def serving(cli, root: Path, *tags: str) -> Iterator[tuple[int, Any]]:
    """m:1, m:2 ... trained and registered, one per tag (the model file says how the server behaves), and m:1
    deployed here on a free port: (port, the deploy's result); the deployment is removed afterwards."""
    for tag in tags:
        registered(cli, root, tag)
    port = free_port()
    try:
        deployed = cli("deploy", "m:1", "--machine", "local", "--port", str(port), "--json")
        assert deployed.code == 0, deployed.err
        yield port, deployed
    finally:
        cli("deployments", "stop", "m", "--remove")


def db_deployment(home: Path, name: str = "m") -> dict:
    """The record as the database holds it, read without running any Workbench command."""
    with sqlite3.connect(home / "workbench.db") as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM deployments WHERE name = ?", (name,)).fetchone()
        return {**dict(row), "canary": json.loads(row["canary"]) if row["canary"] else None}


def db_events(home: Path, name: str = "m") -> list[dict]:
    with sqlite3.connect(home / "workbench.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM deployment_events WHERE deployment = ? ORDER BY id",
                                              (name,))]


@pytest.fixture
def project(make_project):
    def make(extra: str = "") -> Path:
        return make_project(SPEC.replace("EXTRA", extra), {"serve.py": SERVER, "train.py": TRAIN})
    return make


def test_a_version_healthy_but_failing_its_smoke_request_never_gets_traffic(cli, project):
    with serving(cli, project(), "good", "broken") as (port, deployed):
        assert predict(port) == (200, "good")
        refused = cli("deploy", "m:2", "--machine", "local")
        assert_one_line_error(refused, "m:2 not deployed", "smoke request failed", "POST /predict answered HTTP 500",
                              "not aligned", "v1 keeps serving")
        assert predict(port) == (200, "good")
        shown = cli("deployments", "show", "m", "--json").json()
        assert shown["live_version"] == 1 and shown["health"] == "ok"
        failed = [e for e in shown["events"] if e["kind"] == "deploy-failed"]
        assert failed and "HTTP 500" in failed[-1]["message"] and "not aligned" in failed[-1]["message"]
        assert [t["state"] for t in shown["targets"] if t["version"] == 2] == ["failed"]


def test_ports_binds_and_refused_deploys_leave_no_record(cli, project, docker_client, home):
    root = project()
    registered(cli, root, "good")
    assert_one_line_error(cli("deploy", "m", "--machine", "local", "--port", "0"), "port", "1", "65535")
    assert_one_line_error(cli("deploy", "m", "--machine", "local", "--port", "70000"), "port", "65535")
    assert_one_line_error(cli("deploy", "m", "--machine", "local", "--bind", "localhost:1"), "listen address", "not an IP address")
    assert_one_line_error(cli("deploy", "m", "--machine", "local", "--canary", "0"), "--canary")
    # a port held on another address of this machine (docker0's, not loopback) is seen
    bridge = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    held = socket.socket()
    held.bind((bridge, 0))
    held.listen()
    try:
        port = held.getsockname()[1]
        assert_one_line_error(cli("deploy", "m", "--machine", "local", "--port", str(port)),
                              f"port {port} is in use", bridge)
    finally:
        held.close()
    listed = cli("deployments", "list", "--json")
    assert listed.code == 0 and listed.json() == []  # nothing recorded by any refusal
    with sqlite3.connect(home / "workbench.db") as conn:
        instance = conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0]
    assert not docker_client.containers.list(all=True, filters={"label": ["workbench.deployment=m",
                                                                          f"workbench.instance={instance}"]})
    assert cli("models", "show", "m", "--json").json()["versions"][0]["version"] == 1  # nothing lost


KEPT = ("status", "status_reason", "live_version", "live_container", "port", "bind", "auth", "operation", "canary")


def test_a_refused_deploy_leaves_no_new_record_and_an_existing_one_as_it_was(cli, project, docker_client, home):
    """Issue 22 item 6: a first deploy refused by its smoke request records no deployment (no `new` or
    `failed` row, no network or container left); one refused on a live or stopped deployment changes nothing
    of its record (the attempt is in its history)."""
    root = project()
    registered(cli, root, "broken")  # m:1 answers /health but fails its smoke request
    registered(cli, root, "good")    # m:2
    with sqlite3.connect(home / "workbench.db") as conn:
        instance = conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()[0]
    port = free_port()
    try:
        refused = cli("deploy", "m:1", "--machine", "local", "--port", str(port))
        assert_one_line_error(refused, "m:1 not deployed", "smoke request failed")
        listed = cli("deployments", "list", "--json")
        assert listed.code == 0 and listed.json() == [], listed.out
        assert_one_line_error(cli("deployments", "show", "m"), "no deployment 'm'")
        with sqlite3.connect(home / "workbench.db") as conn:
            assert conn.execute("SELECT COUNT(*) FROM deployments").fetchone()[0] == 0
        labels = {"label": ["workbench.deployment=m", f"workbench.instance={instance}"]}
        assert not docker_client.containers.list(all=True, filters=labels)
        assert not docker_client.networks.list(names=[f"workbench-deploy-m-{instance[:8]}"])

        deployed = cli("deploy", "m:2", "--machine", "local", "--port", str(port), "--json")
        assert deployed.code == 0, deployed.err
        assert [(t["version"], t["state"]) for t in deployed.json()["targets"]] == [(2, "live")]  # no v1 phantom
        for how in ("live", "stopped"):
            if how == "stopped":
                assert cli("deployments", "stop", "m").code == 0
            before = {k: db_deployment(home)[k] for k in KEPT}
            assert before["status"] == how
            moved = ("--port", str(free_port())) if how == "stopped" else ()  # nothing live: it may move, if it works
            assert_one_line_error(cli("deploy", "m:1", "--machine", "local", *moved), "m:1 not deployed",
                                  "smoke request failed")
            assert {k: db_deployment(home)[k] for k in KEPT} == before
            assert db_events(home)[-1]["kind"] == "deploy-failed"  # its history says what was tried
    finally:
        cli("deployments", "stop", "m", "--remove")


def test_token_bind_and_a_hardened_model_container(cli, project, home, docker_client):
    with serving(cli, project('auth = "token"\nbind = "127.0.0.1"\n'), "good") as (port, deployed):
        assert "deployments token m" in deployed.err  # said once, on the deploy that made the token
        token = cli("deployments", "token", "m")
        assert token.code == 0 and len(token.out.strip()) >= 32
        secret = token.out.strip()
        assert deployed.err.count(secret) == 1  # printed once, by the deploy that made it
        path = home / "deployments" / "m.token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().strip() == secret
        assert predict(port)[0] == 401 and predict(port, "wrong")[0] == 401
        assert predict(port, secret) == (200, "good")
        # --stop-first on a deployment holding no GPUs: nothing to free, a normal switch (the old one kept)
        again = cli("deploy", "m", "--machine", "local", "--stop-first", "--json")
        assert again.code == 0, again.err
        assert "nothing to free" in again.err and secret not in again.err  # the token is not printed again
        assert [t["state"] for t in again.json()["targets"]] == ["standby", "live"]
        assert predict(port, secret) == (200, "good")
        proxy = docker_client.containers.get(deployed.json()["proxy"])
        bindings = proxy.attrs["HostConfig"]["PortBindings"]["80/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
        model = docker_client.containers.get(again.json()["live_container"])
        host = model.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] and host["Memory"] == 64 * 2 ** 20
        assert model.attrs["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"  # the files' owner
        assert not host.get("PortBindings") and list(model.attrs["NetworkSettings"]["Networks"]) != ["bridge"]
        assert "bridge" not in model.attrs["NetworkSettings"]["Networks"]
    assert not (home / "deployments" / "m.token").exists()
    assert_one_line_error(cli("deployments", "token", "m"), "no deployment 'm'")


def _watcher_pids(home: Path) -> list[int]:
    return background_pids(home, (b"_watch_deployments",))


def test_a_canary_is_promoted_by_the_watcher_with_the_figures_that_decided(cli, project, home):
    with serving(cli, project(), "one", "two") as (port, deployed):
        with Load(port, rate=20) as load:
            time.sleep(1)
            started = cli("deploy", "m:2", "--machine", "local", "--canary", "30", "--canary-for", "6s", "--json")
            assert started.code == 0, started.err
            assert started.json()["canary"]["share"] == 30 and started.json()["live_version"] == 1
            assert _watcher_pids(home)  # the decision does not need this CLI
            wait_for(lambda: db_deployment(home)["canary"] is None, timeout=30)
            time.sleep(1)
        record = db_deployment(home)
        assert record["live_version"] == 2
        promoted = [e for e in db_events(home) if e["kind"] == "canary-promoted"]
        assert promoted and "v2:" in promoted[-1]["message"] and "requests" in promoted[-1]["message"]
        during = [s for s in load.samples if started_at(load) <= s[0]]
        assert all(s[2] == 200 for s in load.samples), [s for s in load.samples if s[2] != 200][:3]
        served = {s[3] for s in during}
        assert {"one", "two"} <= served
        shown = cli("deployments", "show", "m", "--json").json()
        live = next(v for v in shown["traffic"]["versions"] if v["role"] == "live")
        assert live["version"] == 2 and live["since_switch"]["requests"] > 0
        assert shown["traffic"]["read_ms"] < 200
        text = cli("deployments", "show", "m").out
        assert "traffic (from the proxy):" in text and "v2" in text


def started_at(load: Load) -> float:
    return load.samples[0][0] if load.samples else 0.0


def test_a_failing_canary_is_rolled_back_by_itself_within_its_window(cli, project, home):
    share, window, rate = 20, 30, 20
    with serving(cli, project(), "one", "sour") as (port, deployed):
        with Load(port, rate=rate) as load:
            time.sleep(1)
            began = time.monotonic()
            started = cli("deploy", "m:2", "--machine", "local", "--canary", str(share), "--canary-for", f"{window}s",
                          "--max-error-rate", "1%")
            assert started.code == 0, started.err
            wait_for(lambda: db_deployment(home)["canary"] is None, timeout=window)
            decided = time.monotonic() - began
            time.sleep(3)
        assert decided < window / 2, decided  # on its errors, not at the end of the window
        record = db_deployment(home)
        assert record["live_version"] == 1
        rolled = [e for e in db_events(home) if e["kind"] == "canary-rolled-back"]
        assert rolled and "errors over 1%" in rolled[-1]["message"] and "v2:" in rolled[-1]["message"]
        failed = [s for s in load.samples if s[2] != 200]
        assert failed, "the canary failed no request: the test proves nothing"
        assert len(failed) <= share / 100 * rate * window, len(failed)
        after = [s for s in load.samples if s[0] > began + decided + 1.5]
        assert after and all(s[2] == 200 and s[3] == "one" for s in after)


def test_a_canary_held_while_no_watcher_runs_and_a_proxy_restart_keeps_its_split(cli, project, home, docker_client):
    with serving(cli, project(), "one", "two") as (port, deployed):
        started = cli("deploy", "m:2", "--machine", "local", "--canary", "50", "--canary-for", "4s", "--json")
        assert started.code == 0, started.err
        for pid in _watcher_pids(home):  # the workstation goes to sleep: every Workbench process is gone
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _watcher_pids(home), timeout=10)
        docker_client.containers.get(started.json()["proxy"]).restart(timeout=2)
        answers = wait_for(lambda: _answers(port, 20), timeout=15)
        assert set(answers) == {"one", "two"}, answers  # the proxy, restarted, still splits
        time.sleep(5)  # past the window: nothing judged it
        assert db_deployment(home)["canary"] is not None
        listed = cli("deployments", "list")
        assert listed.code == 0
        assert "canary v2 held at 50%" in listed.out + listed.err and "no watcher" in listed.out + listed.err
        wait_for(lambda: db_deployment(home)["canary"] is None, timeout=20)  # the restarted watcher decided
        assert db_deployment(home)["live_version"] == 2


def _answers(port: int, count: int) -> list[str] | None:
    try:
        answers = [predict(port, timeout=3) for _ in range(count)]
    except OSError:
        return None
    return [model for status, model in answers] if all(s == 200 for s, _ in answers) else None


def test_the_live_container_stopped_from_outside_gives_a_fast_503_and_an_event(cli, project, home, docker_client):
    with serving(cli, project(), "one") as (port, deployed):
        wait_for(lambda: _watcher_pids(home), timeout=10)
        container = docker_client.containers.get(deployed.json()["live_container"])
        with Load(port, rate=10) as load:
            time.sleep(1)
            stopped_at = time.monotonic()
            container.stop(timeout=1)
            # the watcher records it (no Workbench command runs meanwhile) ...
            wait_for(lambda: any(e["kind"] == "health" and e["health"] == "failing" for e in db_events(home)),
                     timeout=10)
            time.sleep(2)
        # ... callers got a fast answer, never a hang: every request sent once the stop took effect answered in 2 s
        after = [s for s in load.samples if s[0] > stopped_at + 2]
        assert after and all(s[1] < 2.0 for s in after), max(s[1] for s in after)
        assert any(s[2] == 503 or s[2] == 502 for s in after)
        event = next(e for e in db_events(home) if e["kind"] == "health" and e["health"] == "failing")
        assert "out of the proxy's rotation" in event["message"]


def switch_twenty_times(cli, machine: str, port: int, token: str | None = None, rate: float = 50,
                        host: str = "127.0.0.1") -> Load:
    """v1 live, then 20 switches in a row under `rate` requests/s: a deploy of v2, then 19 rollbacks (each
    starts the kept version again, gates it, switches, drains and stops the other)."""
    with Load(port, rate=rate, token=token, host=host) as load:
        time.sleep(1)
        switched = cli("deploy", "m:2", "--machine", machine, "--json")
        assert switched.code == 0, switched.err
        for _ in range(19):
            back = cli("deployments", "rollback", "m", "--json")
            assert back.code == 0, back.err
        time.sleep(1)
    return load


def test_twenty_switches_in_a_row_under_load_fail_no_request(cli, project):
    with serving(cli, project(), "one", "two") as (port, deployed):
        load = switch_twenty_times(cli, "local", port)
        failed = [s for s in load.samples if s[2] != 200]
        assert not failed, (len(failed), len(load.samples), failed[:3])
        assert {s[3] for s in load.samples} == {"one", "two"} and len(load.samples) > 500
        print(f"20 switches: {len(load.samples)} requests, 0 failed, slowest {max(s[1] for s in load.samples):.2f} s")
        assert cli("deployments", "show", "m", "--json").json()["live_version"] == 1  # v2, then 19 rollbacks


def test_a_live_version_failing_its_callers_reads_errors_not_ok(cli, project, home):
    """Past its smoke request, a version whose /predict fails while /health says 200: the watcher reads its
    5xx share from the proxy and the deployment's health says so (the issue's 1,077 of 1,077 failed
    requests under "health ok")."""
    with serving(cli, project(), "sour", "two") as (port, deployed):
        with Load(port, rate=20):
            wait_for(lambda: db_deployment(home)["health"] == "errors", timeout=30)
        event = [e for e in db_events(home) if e["kind"] == "health"][-1]
        assert "answers 5xx to 100% of its requests" in event["message"], event
        listed = cli("deployments", "list")
        assert listed.out.splitlines()[1].split()[4] == "errors", listed.out  # its HEALTH column
        assert cli("deploy", "m:2", "--machine", "local").code == 0  # a good version: ok again
        assert db_deployment(home)["health"] == "ok"
        assert cli("deployments", "list").out.splitlines()[1].split()[4] == "ok"
