"""Deploying on this machine's own engine (issue 12): the same flow as on a host — the proxy on a stable
port, a switch, a rollback, stop — with a stdlib-only server, and the bad inputs of the [deploy] table."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from helpers import assert_one_line_error, free_port

pytestmark = pytest.mark.docker

SERVER = """
import http.server, json, os, sys, threading
model = open(sys.argv[1]).read()
if model == "flaky":  # serves a few seconds, then crashes at every start (its marker outlives restarts:
    # the spec of the test that deploys it says read_only = false, so / is the container's own layer)
    if os.path.exists("/started"):
        sys.exit(3)
    open("/started", "w").close()
    threading.Timer(4, lambda: os._exit(3)).start()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = json.dumps({"model": model, "path": self.path}).encode()
        self.send_response(200 if self.path in ("/health", "/which") else 404)
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
"""
TRAIN = "import os, sys; open(os.path.join(os.environ['WORKBENCH_OUTPUT'], 'model.txt'), 'w').write(sys.argv[1])"
SPEC = """
[experiments.train]
image = "python:3.11-slim"
command = ["python3", "train.py", "{tag}"]
params = { tag = "a" }
artifacts = ["model.txt"]
DEPLOY
"""
DEPLOY = """
[deploy]
image = "python:3.11-slim"
command = ["python3", "serve.py", "{model}", "{port}"]
health = "/health"
port = 9000
timeout = 20
"""


def which(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/which", timeout=10) as answer:
        return json.loads(answer.read())["model"]


def registered(cli, root, tag: str) -> None:
    run = cli("run", str(root), "-p", f"tag={tag}", "--wait", "--json")
    assert run.code == 0, run.err
    assert cli("models", "register", run.json()["id"], "model.txt", "--name", "m").code == 0


def test_deploy_switch_rollback_and_stop_on_this_machine(cli, make_project):
    root = make_project(SPEC.replace("DEPLOY", DEPLOY), {"serve.py": SERVER, "train.py": TRAIN})
    registered(cli, root, "first")
    registered(cli, root, "second")
    port = free_port()
    try:
        first = cli("deploy", "m:1", "--machine", "local", "--port", str(port), "--bind", "127.0.0.1", "--json")
        assert first.code == 0, first.err
        assert first.json()["endpoint"] == f"http://127.0.0.1:{port}" and which(port) == "first"
        assert first.json()["bind"] == "127.0.0.1"  # and kept by the deploys below, which do not say it again
        assert cli("models", "alias", "m", "2", "production").code == 0
        second = cli("deploy", "m@production", "--machine", "local", "--json")  # the port is kept
        assert second.code == 0, second.err
        assert second.json()["live_version"] == 2 and which(port) == "second"
        assert cli("deployments", "rollback", "m").code == 0
        assert which(port) == "first"
        listed = cli("deployments", "list")
        name, _, _, live, health = listed.out.splitlines()[1].split()[:5]  # under NAME STATUS MODEL LIVE HEALTH
        assert (name, live, health) == ("m", "v1", "ok") and f"127.0.0.1:{port}" in listed.out
        shown = cli("deployments", "show", "m")
        assert "switched v1 → v2" in shown.out and "rolled back v2 → v1" in shown.out
        stopped = cli("deployments", "stop", "m", "--json")
        assert stopped.code == 0 and stopped.json()["status"] == "stopped"
        with pytest.raises(OSError):
            which(port)
        again = cli("deploy", "m:2", "--machine", "local", "--json")  # starts serving again on its port
        assert again.code == 0, again.err
        assert which(port) == "second"
    finally:
        cli("deployments", "stop", "m", "--remove")


def test_deploy_bad_input(cli, make_project, tmp_path):
    bare = make_project(SPEC.replace("DEPLOY", ""), {"serve.py": SERVER, "train.py": TRAIN})
    registered(cli, bare, "x")
    assert_one_line_error(cli("deploy", "m", "--machine", "local"), "has no [deploy] table")
    assert_one_line_error(cli("deploy", "m", "--machine", "nowhere"), "nowhere")
    assert_one_line_error(cli("deploy", "m:x", "--machine", "local"), "is not a number")
    (bare / "workbench.toml").write_text(SPEC.replace("DEPLOY", DEPLOY.replace('health = "/health"', 'health = "health"')))
    assert_one_line_error(cli("deploy", "m", "--machine", "local"), "deploy.health", "starting with /")
    (bare / "workbench.toml").write_text(SPEC.replace("DEPLOY", DEPLOY + 'gpus = "two"\n'))
    assert_one_line_error(cli("deploy", "m", "--machine", "local"), "deploy.gpus")
    (bare / "workbench.toml").write_text(SPEC.replace("DEPLOY", DEPLOY.replace('"{port}"', '"{nope}"')))
    assert_one_line_error(cli("deploy", "m", "--machine", "local"), "deploy.command", "nope")
    moved = tmp_path / "moved"
    bare.rename(moved)
    assert_one_line_error(cli("deploy", "m", "--machine", "local"), "the project of m:1 is gone")
    assert_one_line_error(cli("deployments", "show", "m"), "no deployment 'm'")
    assert cli("models", "show", "m", "--json").json()["versions"][0]["version"] == 1  # nothing lost


def test_a_failed_first_deploy_moves_its_port_and_a_crashing_version_is_replaced(cli, make_project):
    root = make_project(SPEC.replace("DEPLOY", DEPLOY + "read_only = false\n"), {"serve.py": SERVER, "train.py": TRAIN})
    registered(cli, root, "flaky")
    registered(cli, root, "steady")
    first, second = free_port(), free_port()
    try:
        assert cli("deploy", "m:1", "--machine", "local", "--port", str(first)).code == 0
        time.sleep(6)  # v1 crashed, and crashes again at each restart: no address for the proxy to follow
        listed = cli("deployments", "list", "--json")
        assert listed.code == 0 and listed.json()[0]["health"] == "failing", listed.out
        replaced = cli("deploy", "m:2", "--machine", "local", "--json")  # not blocked by the crashing v1
        assert replaced.code == 0, replaced.err
        assert which(first) == "steady"
        assert cli("deployments", "stop", "m", "--remove").code == 0
        # a first deploy that never turned healthy: the next one may pick another port
        (root / "workbench.toml").write_text(SPEC.replace("DEPLOY", DEPLOY.replace("timeout = 20", "timeout = 2")
                                                          .replace('"/health"', '"/missing"')))
        assert_one_line_error(cli("deploy", "m:2", "--machine", "local", "--port", str(first)), "not deployed")
        (root / "workbench.toml").write_text(SPEC.replace("DEPLOY", DEPLOY))
        moved = cli("deploy", "m:2", "--machine", "local", "--port", str(second), "--json")
        assert moved.code == 0, moved.err
        assert moved.json()["endpoint"] == f"http://127.0.0.1:{second}" and which(second) == "steady"
    finally:
        cli("deployments", "stop", "m", "--remove")
