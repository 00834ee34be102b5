"""Issue 22, items 3 and 17: `deployments logs` prints the server's lines as lines; `deployments list` has a
header row and a stopped deployment lists `-` for its endpoint; `deployments show` lists its history newest
first, as the app does; `deployments stop` says one line. One real deployment on this machine's engine
(two versions of a stdlib-only server, the second switched in), shared by the tests of this module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Result, free_port

pytestmark = pytest.mark.docker

SERVER = """
import http.server, sys
print("serving", open(sys.argv[1]).read())
print("second line", flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
"""


_SERVICES = str(Path(__file__).resolve().parents[1] / "services")
if _SERVICES not in sys.path:
    sys.path.append(_SERVICES)  # the project of tests/services/test_deploy_local.py, shared rather than copied
import test_deploy_local  # noqa: E402

SPEC = test_deploy_local.SPEC.replace("DEPLOY", test_deploy_local.DEPLOY)
TRAIN = test_deploy_local.TRAIN


@pytest.fixture(scope="module")
def deployed(docker_client, tmp_path_factory):
    """Deployment `m` on this machine: v1 deployed, then v2 switched in. Returns the CLI for its data dir."""
    home = tmp_path_factory.mktemp("wbhome")
    project = tmp_path_factory.mktemp("served")
    for name, text in (("workbench.toml", SPEC), ("serve.py", SERVER), ("train.py", TRAIN)):
        (project / name).write_text(text)

    def cli(*args: str) -> Result:
        env = {**os.environ, "WORKBENCH_HOME": str(home)}
        env.pop("WORKBENCH_DEBUG", None)
        done = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                              timeout=240, env=env)
        return Result(done.returncode, done.stdout, done.stderr)

    for tag in ("first", "second"):
        run = cli("run", str(project), "-p", f"tag={tag}", "--executor", "process", "--wait", "--json")
        assert run.code == 0, run.err
        assert cli("models", "register", run.json()["id"], "model.txt", "--name", "m").code == 0
    try:
        for args in (("m:1", "--port", str(free_port()), "--bind", "127.0.0.1"), ("m:2",)):  # the port is kept
            done = cli("deploy", *args, "--machine", "local")
            assert done.code == 0, done.err
        yield cli
    finally:
        cli("deployments", "stop", "m", "--remove")


def test_logs_print_the_servers_lines_as_lines(deployed):
    shown = deployed("deployments", "logs", "m")
    assert shown.code == 0, shown.err
    assert shown.out.splitlines()[:2] == ["serving second", "second line"], shown.out
    assert "\\n" not in shown.out


def test_list_has_a_header_row(deployed):
    lines = deployed("deployments", "list").out.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "MODEL", "LIVE", "HEALTH", "ENDPOINT", "MACHINE", "LAST", "SWITCH"]
    assert lines[1].split()[:2] == ["m", "live"] and "http://127.0.0.1:" in lines[1]


def test_history_is_newest_first(deployed):
    lines = deployed("deployments", "show", "m").out.splitlines()
    history = lines[lines.index("history:") + 1:]
    assert [line.split()[2] for line in history] == ["switch", "deploy"], history
    stamps = [" ".join(line.split()[:2]) for line in history]
    assert stamps == sorted(stamps, reverse=True)


def test_show_names_the_version_a_rollback_brings_back(deployed):
    """Issue 22 item 17: where `deployments rollback` goes (the kept version live most recently), said by
    `deployments show` as the app's question says it: the service's `rollback_to`."""
    shown = deployed("deployments", "show", "m", "--json").json()
    assert shown["live_version"] == 2 and shown["rollback_to"] == 1, shown
    lines = deployed("deployments", "show", "m").out.splitlines()
    assert "rollback to: v1 (kept, live most recently)" in lines, lines


def test_stop_says_one_line_and_a_stopped_deployment_lists_no_endpoint(deployed):
    stopped = deployed("deployments", "stop", "m")
    assert stopped.code == 0, stopped.err
    said = [line for line in (stopped.out + stopped.err).splitlines() if line.strip()]
    assert len(said) == 1 and "stopped" in said[0], said
    row = deployed("deployments", "list").out.splitlines()[1]
    assert row.split()[:2] == ["m", "stopped"] and "http" not in row and " - " in row, row
