"""Deployments (issue 12) on the SSH test host with its own Docker engine: a real mnist-numpy run trained
there, registered, deployed behind the Caddy proxy (the caddy:2 stand-in streamed from this workstation),
predictions over HTTP at the stable endpoint; v2 switched in while a client sends 50 requests/s (no request
may fail); a broken v3 that never turns healthy (v2 keeps serving); rollback; the CLI kill -9'ed
mid-deploy (the next `deployments list` settles on the version the proxy serves); the proxy killed
(brought back on the same port); and the bad inputs."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import helpers
from helpers import assert_one_line_error, free_port, wait_for
from remote_hosts import copy_image, register

pytestmark = pytest.mark.docker

SAMPLE = helpers.SAMPLES / "mnist-numpy"
BROKEN = """
[experiments.broken]
dockerfile = "Dockerfile"
command = ["python", "-c", "import os; open(os.path.join(os.environ['WORKBENCH_OUTPUT'], 'model.npz'), 'w').write('not a model')"]
artifacts = ["model.npz"]
"""
DIGIT = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8,
         0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]


def predict(endpoint: str, timeout: float = 10) -> int:
    request = urllib.request.Request(f"{endpoint}/predict", json.dumps({"pixels": DIGIT}).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        assert answer.status == 200
        return json.loads(answer.read())["digit"]


class Load(helpers.Load):
    """A client sending `rate` requests/s (each on a new connection) until stopped; counts failures."""

    def __init__(self, endpoint: str, rate: float = 50) -> None:
        super().__init__(lambda: (200, predict(endpoint)), rate)

    @property
    def ok(self) -> int:
        return sum(1 for sample in self.samples if sample[2] == 200)

    @property
    def failed(self) -> list[str]:
        return [sample[3] for sample in self.samples if sample[2] != 200]


def _train(cli, root: Path, epochs: int) -> str:
    done = cli("run", str(root), "-e", "train", "--machine", "gpu-a", "-p", f"epochs={epochs}", "--wait", "--json",
               timeout=600)
    assert done.code == 0, done.err
    run = done.json()
    assert run["status"] == "succeeded", run
    return run["id"]


def _starting(home: Path) -> bool:
    """A version is being started (read from the database: no command, so the kill comes before the switch)."""
    import sqlite3

    with sqlite3.connect(home / "workbench.db") as conn:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM deployment_targets WHERE state = 'starting')").fetchone()[0]


def _deployment(cli, name: str) -> dict:
    listed = cli("deployments", "list", "--json")
    assert listed.code == 0, listed.err
    return next(d for d in listed.json() if d["name"] == name)


@pytest.fixture(scope="module")
def host(remote_env):
    copy_image("python:3.11-slim", remote_env.docker_host)  # what `docker pull` would have put there
    yield remote_env
    # the host env is shared by the session: leave it without the image, as the other modules expect it
    remote_env.docker.images.remove("python:3.11-slim", force=True)


def test_train_register_deploy_switch_rollback_on_a_host(cli, host, tmp_path, home):
    remote_env = host
    register(cli, "gpu-a", remote_env.gpu, remote_env.user_key, extra=("--dir", str(tmp_path / "host")))
    root = tmp_path / "mnist"
    shutil.copytree(SAMPLE, root)
    spec = (root / "workbench.toml").read_text().replace('health = "/health"', 'health = "/health"\ntimeout = 10')
    (root / "workbench.toml").write_text(spec + BROKEN)
    port = free_port()

    v1_run = _train(cli, root, 8)
    assert cli("models", "register", v1_run, "model.npz", "--name", "digits").code == 0
    started = time.monotonic()
    deployed = cli("deploy", "digits", "--machine", "gpu-a", "--port", str(port), "--json", timeout=600)
    assert deployed.code == 0, deployed.err
    deployed = deployed.json()
    endpoint = deployed["endpoint"]
    assert endpoint == f"http://127.0.0.3:{port}" and deployed["live_version"] == 1 and deployed["health"] == "ok"
    assert predict(endpoint) in range(10)
    containers = remote_env.docker.containers.list(filters={"label": "workbench.deployment=digits"})
    assert {c.labels["workbench.role"] for c in containers} == {"proxy", "serve"}
    assert all(c.labels["workbench.kind"] == "deployment" for c in containers)
    assert all(c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped" for c in containers)
    print(f"promote -> serving: {time.monotonic() - started:.1f} s (first deploy, image and model sent)")

    # v2 while a client sends 50 requests/s: not one fails
    v2_run = _train(cli, root, 12)
    assert cli("models", "register", v2_run, "model.npz", "--name", "digits").code == 0
    with Load(endpoint) as load:
        time.sleep(1)
        switched = cli("deploy", "digits:2", "--machine", "gpu-a", "--json")
        time.sleep(1)
    assert switched.code == 0, switched.err
    assert switched.json()["live_version"] == 2
    assert load.failed == [] and load.ok > 50, (load.ok, load.failed[:3])
    old = [t for t in switched.json()["targets"] if t["version"] == 1 and t["state"] == "standby"]
    assert old and remote_env.docker.containers.get(old[0]["container"]).status == "exited"  # kept for rollback

    # a broken v3 never turns healthy: removed, v2 keeps serving, the reason said
    broken = cli("run", str(root), "-e", "broken", "--machine", "gpu-a", "--wait", "--json", timeout=300)
    assert broken.code == 0, broken.err
    assert cli("models", "register", broken.json()["id"], "model.npz", "--name", "digits").code == 0
    failed = cli("deploy", "digits:3", "--machine", "gpu-a")
    assert_one_line_error(failed, "digits:3 not deployed", "did not answer /health with 200 within 10 s",
                          "HTTP 500", "v2 keeps serving")
    assert predict(endpoint) in range(10)
    shown = cli("deployments", "show", "digits", "--json").json()
    assert shown["live_version"] == 2 and [e["kind"] for e in shown["events"]][-1] == "deploy-failed"
    assert not remote_env.docker.containers.list(all=True, filters={"label": ["workbench.deployment=digits",
                                                                             "workbench.version=3"]})

    # rollback: back to v1 in seconds, with requests flowing
    with Load(endpoint) as load:
        time.sleep(0.5)
        started = time.monotonic()
        back = cli("deployments", "rollback", "digits", "--json")
        took = time.monotonic() - started
    assert back.code == 0, back.err
    assert back.json()["live_version"] == 1 and load.failed == [], load.failed[:3]
    assert took < 10, took
    print(f"rollback: {took:.1f} s")

    # the CLI killed mid-deploy: the next look settles on what the proxy serves
    env = {"WORKBENCH_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-m", "workbench", "deploy", "digits:2", "--machine", "gpu-a"],
                               env={**__import__("os").environ, **env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for(lambda: _starting(home) if process.poll() is None else True, timeout=120, interval=0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    settled = wait_for(lambda: (d := _deployment(cli, "digits")) and not d.get("operation") and d, timeout=60,
                       interval=0.5)
    assert settled["live_version"] == 1 and settled["status"] == "live" and settled["health"] == "ok"
    assert predict(endpoint) in range(10)
    running = remote_env.docker.containers.list(filters={"label": ["workbench.deployment=digits",
                                                                   "workbench.role=serve"]})
    assert len(running) == 1 and running[0].labels["workbench.version"] == "1"

    # the proxy killed: brought back on the same port by the next look
    proxy = remote_env.docker.containers.list(filters={"label": ["workbench.deployment=digits",
                                                                 "workbench.role=proxy"]})[0]
    proxy.kill()
    assert _deployment(cli, "digits")["health"] == "ok"
    assert predict(endpoint) in range(10)
    assert "proxy-restarted" in [e["kind"] for e in cli("deployments", "show", "digits", "--json").json()["events"]]

    # bad input: one clear line each, nothing recorded lost
    assert_one_line_error(cli("deploy", "nosuch", "--machine", "gpu-a"), "no model 'nosuch'")
    assert_one_line_error(cli("deploy", "digits:9", "--machine", "gpu-a"), "has no version 9")
    assert_one_line_error(cli("deploy", "digits@production", "--machine", "gpu-a"), "has no alias 'production'")
    assert_one_line_error(cli("deploy", "digits:2", "--machine", "gpu-a", "--name", "other", "--port", str(port)),
                          f"port {port} is in use")
    assert_one_line_error(cli("deployments", "rollback", "ghost"), "no deployment 'ghost'")
    logs = cli("deployments", "logs", "digits")
    assert logs.code == 0 and "model loaded" in logs.out
    assert _deployment(cli, "digits")["live_version"] == 1

    stopped = cli("deployments", "stop", "digits", "--remove")
    assert stopped.code == 0, stopped.err
    assert not remote_env.docker.containers.list(all=True, filters={"label": "workbench.deployment=digits"})
    assert cli("deployments", "list", "--json").json() == []  # the refused "other" left no record


TINY_TRAIN = """
[experiments.train]
image = "python:3.11-slim"
command = ["python3", "-c", "import os; open(os.path.join(os.environ['WORKBENCH_OUTPUT'], 'm.txt'), 'w').write('m')"]
artifacts = ["m.txt"]
"""
GPU_SPEC = TINY_TRAIN + """
[deploy]
image = "python:3.11-slim"
command = ["python3", "-c", "import http.server as h, os; H = type('H', (h.BaseHTTPRequestHandler,), {'do_GET': lambda s: (s.send_response(200), s.end_headers(), s.wfile.write(os.environ.get('NVIDIA_VISIBLE_DEVICES', '-').encode()))}); h.HTTPServer(('', {port}), H).serve_forever()"]
gpus = 1
"""


def test_a_gpu_deployment_holds_its_gpu_and_a_full_host_offers_stop_first(cli, host, make_project, tmp_path):
    (host.gpu.dir / "gpu-count").write_text("1")
    try:
        register(cli, "gpu-a", host.gpu, host.user_key, extra=("--dir", str(tmp_path / "host")))
        root = make_project(GPU_SPEC)
        for _ in range(2):
            run = cli("run", str(root), "--machine", "gpu-a", "--wait", "--json")
            assert run.code == 0, run.err
            assert cli("models", "register", run.json()["id"], "m.txt", "--name", "g").code == 0
        port = free_port()
        first = cli("deploy", "g:1", "--machine", "gpu-a", "--port", str(port), "--json")
        assert first.code == 0, first.err
        with urllib.request.urlopen(f"http://127.0.0.3:{port}/", timeout=10) as answer:
            assert answer.read().decode() == host.gpu_uuids[0]  # pinned by UUID, as a run's GPUs are
        # the GPU is held: a run needing it waits for it, and v2 cannot start beside v1
        assert_one_line_error(cli("deploy", "g:2", "--machine", "gpu-a"), "gpu-a cannot hold both versions",
                              "--stop-first")
        assert cli("deployments", "show", "g", "--json").json()["live_version"] == 1
        second = cli("deploy", "g:2", "--machine", "gpu-a", "--stop-first", "--json")
        assert second.code == 0, second.err
        assert second.json()["live_version"] == 2
        events = [e["kind"] for e in second.json()["events"]]
        assert "stop-first" in events
        states = {t["version"]: t["state"] for t in second.json()["targets"]}
        assert states == {1: "standby-gone", 2: "live"}  # v1 gave its GPU up, and is kept as its image
        # rollback starts v1 again from its image (v2 stopped first: the one GPU cannot hold both)
        back = cli("deployments", "rollback", "g", "--json")
        assert back.code == 0, back.err
        assert back.json()["live_version"] == 1
        assert any("from its image" in e["message"] for e in back.json()["events"] if e["kind"] == "rollback")
        with urllib.request.urlopen(f"http://127.0.0.3:{port}/", timeout=10) as answer:
            assert answer.read().decode() == host.gpu_uuids[0]
        running = host.docker.containers.list(filters={"label": ["workbench.deployment=g", "workbench.role=serve"]})
        assert [c.labels["workbench.version"] for c in running] == ["1"]
        assert cli("deployments", "stop", "g", "--remove").code == 0
    finally:
        (host.gpu.dir / "gpu-count").unlink(missing_ok=True)


SLOW_SPEC = TINY_TRAIN + """
[deploy]
image = "python:3.11-slim"
command = ["python3", "-c", "import http.server as h, time; time.sleep({delay}); H = type('H', (h.BaseHTTPRequestHandler,), {'do_GET': lambda s: (s.send_response(200), s.end_headers(), s.wfile.write(b'ok'))}); h.HTTPServer(('', {port}), H).serve_forever()"]
"""


def test_the_host_lost_during_a_switch_settles_on_one_live_version(cli, host, make_project, tmp_path):
    from test_remote_faults import _kill_host

    register(cli, "gpu-a", host.gpu, host.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(SLOW_SPEC.replace("{delay}", "0"))
    run = cli("run", str(root), "--machine", "gpu-a", "--wait", "--json")
    assert run.code == 0, run.err
    for _ in range(2):
        assert cli("models", "register", run.json()["id"], "m.txt", "--name", "s").code == 0
    port = free_port()
    assert cli("deploy", "s:1", "--machine", "gpu-a", "--port", str(port)).code == 0
    (root / "workbench.toml").write_text(SLOW_SPEC.replace("{delay}", "30"))  # v2 takes its time to answer
    process = subprocess.Popen([sys.executable, "-m", "workbench", "deploy", "s:2", "--machine", "gpu-a"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(t["state"] == "starting" for t in cli("deployments", "show", "s", "--json")
                         .json()["targets"]), timeout=120, interval=0.1)
    _kill_host(host.gpu)  # mid-switch: sshd and every session gone
    try:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 1 and err.count("workbench: error:") == 1 and "Traceback" not in err, err
        away = cli("deployments", "list", "--json")
        assert away.code == 0, away.err
        (record,) = away.json()
        assert record["health"] == "unknown" and record["live_version"] == 1  # said, nothing changed
        with urllib.request.urlopen(f"http://127.0.0.3:{port}/", timeout=10) as answer:
            assert answer.read() == b"ok"  # the proxy never stopped serving v1
    finally:
        host.gpu.start()
    settled = wait_for(lambda: (d := _deployment(cli, "s")) and not d.get("operation") and d, timeout=60,
                       interval=0.5)
    assert settled["live_version"] == 1 and settled["health"] == "ok"
    serving = host.docker.containers.list(all=True, filters={"label": ["workbench.deployment=s", "workbench.role=serve"]})
    assert [c.labels["workbench.version"] for c in serving] == ["1"]  # the half-started v2 is gone
    assert "reconciled" in [e["kind"] for e in cli("deployments", "show", "s", "--json").json()["events"]]
    assert cli("deployments", "stop", "s", "--remove").code == 0


MODEL_SPEC = TINY_TRAIN + """
[experiments.other]
image = "python:3.11-slim"
command = ["python3", "-c", "import os; open(os.path.join(os.environ['WORKBENCH_OUTPUT'], 'm.txt'), 'w').write('n')"]
artifacts = ["m.txt"]

[deploy]
image = "python:3.11-slim"
command = ["python3", "-c", "import http.server as h; H = type('H', (h.BaseHTTPRequestHandler,), {'do_GET': lambda s: (s.send_response(200), s.end_headers(), s.wfile.write(open('{model}', 'rb').read()))}); h.HTTPServer(('', {port}), H).serve_forever()"]
"""


def _served(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.3:{port}/", timeout=10) as answer:
        return answer.read()


def _tamper(path: Path, data: bytes) -> None:
    """Changes a read-only file in place, keeping its size and mode (what a user or a bad disk might do)."""
    mode = path.stat().st_mode
    assert len(data) == path.stat().st_size
    path.chmod(0o600)
    path.write_bytes(data)
    path.chmod(mode)


def _replacements(deployment: dict) -> list[str]:
    return [e["message"] for e in deployment["events"] if e["kind"] == "model-replaced"]


def test_a_model_copy_changed_on_the_host_is_replaced_not_served(cli, host, make_project, tmp_path):
    """The host's copy of a model is reused only when its sha256, computed there, is the registry's: a file
    tampered with on the host (same size) is sent again before a deploy or a rollback serves it, and an
    event says so; an unchanged copy is reused as it is."""
    register(cli, "gpu-a", host.gpu, host.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(MODEL_SPEC)
    for experiment in ("train", "other"):  # m:1 holds "m", m:2 holds "n"
        run = cli("run", str(root), "-e", experiment, "--machine", "gpu-a", "--wait", "--json")
        assert run.code == 0, run.err
        assert cli("models", "register", run.json()["id"], "m.txt", "--name", "m").code == 0
    copy_of = {data: tmp_path / "host" / "models" / hashlib.sha256(data).hexdigest() for data in (b"m", b"n")}
    first = cli("deploy", "m:1", "--machine", "gpu-a", "--port", str(free_port()), "--json")
    assert first.code == 0, first.err
    assert _served(int(first.json()["endpoint"].rsplit(":", 1)[1])) == b"m"
    assert _replacements(first.json()) == []
    # the copy and its folder are the login user's alone (issue 20), and the server still reads it
    copy = copy_of[b"m"]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o400 and stat.S_IMODE(copy.parent.stat().st_mode) == 0o700

    _tamper(copy_of[b"m"], b"x")  # the same size: a size check cannot tell
    port = free_port()
    second = cli("deploy", "m:1", "--machine", "gpu-a", "--name", "m2", "--port", str(port), "--json")
    assert second.code == 0, second.err
    assert _served(port) == b"m"  # the registry's model, not the host's changed copy
    assert copy_of[b"m"].read_bytes() == b"m"
    (said,) = _replacements(second.json())
    assert hashlib.sha256(b"m").hexdigest()[:12] in said and hashlib.sha256(b"x").hexdigest()[:12] in said
    assert "model copy on gpu-a" in second.err  # said at the deploy, too

    switched = cli("deploy", "m:2", "--machine", "gpu-a", "--name", "m2", "--json")
    assert switched.code == 0, switched.err
    assert _served(port) == b"n"
    _tamper(copy_of[b"m"], b"y")  # the kept v1 mounts this path when it starts again
    back = cli("deployments", "rollback", "m2", "--json")
    assert back.code == 0, back.err
    assert back.json()["live_version"] == 1 and _served(port) == b"m"
    assert len(_replacements(back.json())) == 2

    inode = copy_of[b"n"].stat().st_ino
    third = cli("deploy", "m:2", "--machine", "gpu-a", "--name", "m3", "--port", str(free_port()), "--json")
    assert third.code == 0, third.err
    assert copy_of[b"n"].stat().st_ino == inode  # an unchanged copy is reused, not sent again
    assert _replacements(third.json()) == []
    for name in ("m", "m2", "m3"):
        assert cli("deployments", "stop", name, "--remove").code == 0


def _trust():
    """The stdlib server, spec and load client of tests/services/test_deploy_trust.py."""
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/services
    import test_deploy_trust
    return test_deploy_trust


def _registered_on_host(cli, root: Path, tags: tuple[str, ...]) -> None:
    """m:1, m:2 ... trained on gpu-a, one per tag (the model file says how the server behaves)."""
    for tag in tags:
        run = cli("run", str(root), "-p", f"tag={tag}", "--machine", "gpu-a", "--wait", "--json", timeout=300)
        assert run.code == 0, run.err
        assert cli("models", "register", run.json()["id"], "model.txt", "--name", "m").code == 0


def test_smoke_canary_token_and_a_stopped_version_on_a_host(cli, host, make_project, tmp_path, home):
    trust = _trust()
    register(cli, "gpu-a", host.gpu, host.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(trust.SPEC.replace("EXTRA", 'auth = "token"\n'), {"serve.py": trust.SERVER,
                                                                          "train.py": trust.TRAIN})
    _registered_on_host(cli, root, ("one", "broken", "sour", "two"))
    port = free_port()
    try:
        assert cli("deploy", "m:1", "--machine", "gpu-a", "--port", str(port)).code == 0
        token = cli("deployments", "token", "m").out.strip()
        assert trust.predict(port, host="127.0.0.3")[0] == 401
        assert trust.predict(port, token, host="127.0.0.3") == (200, "one")
        # healthy but failing /predict: refused by its smoke request, v1 keeps serving
        assert_one_line_error(cli("deploy", "m:2", "--machine", "gpu-a"), "smoke request failed", "HTTP 500")
        # a canary failing after its smoke request: rolled back by the watcher within its window
        with trust.Load(port, rate=20, token=token, host="127.0.0.3") as load:
            time.sleep(1)
            assert cli("deploy", "m:3", "--machine", "gpu-a", "--canary", "20", "--canary-for", "30s").code == 0
            wait_for(lambda: trust.db_deployment(home)["canary"] is None, timeout=30)
        assert trust.db_deployment(home)["live_version"] == 1
        assert any(e["kind"] == "canary-rolled-back" for e in trust.db_events(home))
        failed = [s for s in load.samples if s[2] != 200]
        assert failed and len(failed) <= 0.2 * 20 * 30
        # a good canary: promoted by the watcher at the end of its window, figures per version on show
        with trust.Load(port, rate=20, token=token, host="127.0.0.3") as load:
            assert cli("deploy", "m:4", "--machine", "gpu-a", "--canary", "50", "--canary-for", "5s").code == 0
            wait_for(lambda: trust.db_deployment(home)["canary"] is None, timeout=30)
            time.sleep(1)
        assert trust.db_deployment(home)["live_version"] == 4 and all(s[2] == 200 for s in load.samples)
        assert {"one", "two"} <= {s[3] for s in load.samples}
        shown = cli("deployments", "show", "m", "--json").json()
        assert shown["traffic"]["error"] is None and shown["traffic"]["read_ms"] < 200, shown["traffic"]
        print(f"metrics read for show over SSH: {shown['traffic']['read_ms']} ms")
        # the live container stopped from outside: callers get a fast 503, the watcher records it
        live = host.docker.containers.get(shown["live_container"])
        with trust.Load(port, rate=10, token=token, host="127.0.0.3") as load:
            time.sleep(1)
            stopped_at = time.monotonic()
            live.stop(timeout=1)
            wait_for(lambda: any(e["kind"] == "health" and e["health"] == "failing" for e in trust.db_events(home)),
                     timeout=10)
            time.sleep(2)
        after = [s for s in load.samples if s[0] > stopped_at + 2]
        assert after and all(s[1] < 2.0 for s in after), max(s[1] for s in after)
    finally:
        cli("deployments", "stop", "m", "--remove")


def test_twenty_switches_in_a_row_under_load_on_a_host(cli, host, make_project, tmp_path):
    trust = _trust()
    register(cli, "gpu-a", host.gpu, host.user_key, extra=("--dir", str(tmp_path / "host")))
    root = make_project(trust.SPEC.replace("EXTRA", ""), {"serve.py": trust.SERVER, "train.py": trust.TRAIN})
    _registered_on_host(cli, root, ("one", "two"))
    port = free_port()
    try:
        assert cli("deploy", "m:1", "--machine", "gpu-a", "--port", str(port)).code == 0
        load = trust.switch_twenty_times(cli, "gpu-a", port, host="127.0.0.3")
        failed = [s for s in load.samples if s[2] != 200]
        assert not failed, (len(failed), len(load.samples), failed[:3])
        assert {s[3] for s in load.samples} == {"one", "two"} and len(load.samples) > 500
        print(f"20 switches: {len(load.samples)} requests, 0 failed, slowest {max(s[1] for s in load.samples):.2f} s")
    finally:
        cli("deployments", "stop", "m", "--remove")
