"""The smoke request against a real HTTP server on loopback: each way a version can fail it gives the one line
a deployment records, and a server that accepts and never answers is given up on within the timeout. Then the
mnist-numpy sample's own smoke request against its serve.py: passed by a trained model, failed by one whose
/health says 200 while every prediction fails, and served from a read-only root within the spec's memory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, free_port, wait_for
from workbench.projects.spec import Smoke, load_spec
from workbench.serving.health import TIMEOUT, local_http
from workbench.serving.smoke import smoke_check

ERROR = '{"error": "shapes (64,) and (32,) not aligned"}'
ANSWERS = {  # path -> (status, body)
    "/predict": (200, json.dumps({"digit": 3, "p": 0.9})),
    "/nokey": (200, json.dumps({"label": 3})),
    "/list": (200, "[3]"),
    "/fail": (500, ERROR),
    "/html": (200, "<html>\x1b[2Jhello\nworld</html>"),
    "/long": (502, "x" * 5000),
    "/empty": (500, ""),
    "/created": (201, "{}"),
}


@pytest.fixture(scope="module")
def server():
    seen: list[tuple[str, str, bytes, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, method):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((method, self.path, body, self.headers.get("Content-Type")))
            status, text = ANSWERS.get(self.path, (404, "not found"))
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.answer("GET")

        def do_POST(self):
            self.answer("POST")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], seen
    httpd.shutdown()
    httpd.server_close()


def check(server, smoke: Smoke) -> str | None:
    port, _ = server
    return smoke_check(local_http, "127.0.0.1", port, smoke)


def test_passes_with_the_expected_status_and_keys(server):
    port, seen = server
    assert check(server, Smoke("/predict", b'{"pixels": [1, 2]}', expect_json_keys=("digit",))) is None
    assert seen[-1] == ("POST", "/predict", b'{"pixels": [1, 2]}', "application/json")
    assert check(server, Smoke("/predict", expect_json_keys=("digit", "p"))) is None
    assert seen[-1] == ("GET", "/predict", b"", None)
    assert check(server, Smoke("/created", b"raw bytes", expect_status=201)) is None
    assert seen[-1] == ("POST", "/created", b"raw bytes", "application/octet-stream")
    assert check(server, Smoke("/html")) is None  # no keys asked for: the body is not read as JSON


def test_200_without_the_keys(server):
    assert check(server, Smoke("/nokey", b"{}", expect_json_keys=("digit",))) == \
        """POST /nokey answered 200 but the JSON has no key 'digit': {"label": 3}"""
    assert check(server, Smoke("/predict", expect_json_keys=("digit", "label", "x"))) == \
        """GET /predict answered 200 but the JSON has no keys 'label', 'x': {"digit": 3, "p": 0.9}"""
    assert check(server, Smoke("/list", expect_json_keys=("digit",))) == \
        "GET /list answered 200 but the JSON has no key 'digit': [3]"


def test_500_with_its_body(server):
    assert check(server, Smoke("/fail", b"{}", expect_json_keys=("digit",))) == \
        f"POST /fail answered HTTP 500: {ERROR}"
    assert check(server, Smoke("/empty")) == "GET /empty answered HTTP 500: (empty body)"
    assert check(server, Smoke("/predict", expect_status=201)) == \
        'GET /predict answered HTTP 200 (expected 201): {"digit": 3, "p": 0.9}'


def test_a_long_body_is_cut_and_control_characters_escaped(server):
    long = check(server, Smoke("/long"))
    assert long == "GET /long answered HTTP 502: " + "x" * 200 + "…"
    html = check(server, Smoke("/html", expect_json_keys=("digit",)))
    assert html == r"GET /html answered 200 but not JSON: <html>\x1b[2Jhello\nworld</html>"
    assert "\n" not in html and "\x1b" not in html


def test_nothing_listening_is_no_answer(server):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # bound, not listening: the connection is refused
    assert smoke_check(local_http, "127.0.0.1", closed, Smoke("/predict", b"{}")) == \
        f"POST /predict gave no answer within {TIMEOUT:g} s"


def test_a_server_that_accepts_and_never_answers_is_given_up_on_within_the_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the connection; nothing ever reads or answers it
        started = time.monotonic()
        result = smoke_check(local_http, "127.0.0.1", silent.getsockname()[1], Smoke("/predict", b"{}"))
        waited = time.monotonic() - started
    assert result == f"POST /predict gave no answer within {TIMEOUT:g} s"
    assert TIMEOUT - 0.5 <= waited <= TIMEOUT + 1.5, waited


# ---------------------------------------------------------------------------------------------------
# The mnist-numpy sample's own smoke request, against its serve.py
SAMPLE = SAMPLES / "mnist-numpy"


def wait_healthy(port: int) -> None:
    wait_for(lambda: (answer := local_http("127.0.0.1", port, path="/health")) and answer.status == 200, timeout=30)


@pytest.fixture
def sample_server(tmp_path):
    """Starts the sample's serve.py on this machine with a model; yields its port."""
    started: list[subprocess.Popen] = []

    def start(model: Path) -> int:
        port = free_port()
        started.append(subprocess.Popen([sys.executable, "serve.py", "--model", str(model), "--port", str(port),
                                         "--host", "127.0.0.1"], cwd=SAMPLE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        wait_healthy(port)
        return port
    yield start
    for process in started:
        process.kill()
        process.wait()


def test_the_sample_smoke_request_passes_on_a_trained_model_and_catches_a_misshaped_one(sample_server, tmp_path):
    smoke = load_spec(SAMPLE).deploy.smoke
    assert smoke.method == "POST" and smoke.expect_json_keys == ("digit",)
    assert len(json.loads(smoke.body)["pixels"]) == 64
    trained = subprocess.run([sys.executable, "train.py", "--epochs", "3"], cwd=SAMPLE, capture_output=True,
                             env={**os.environ, "WORKBENCH_OUTPUT": str(tmp_path / "good")}, timeout=120)
    assert trained.returncode == 0, trained.stderr
    assert smoke_check(local_http, "127.0.0.1", sample_server(tmp_path / "good" / "model.npz"), smoke) is None

    # A model for 32 inputs: it loads, /health says 200, and every prediction fails
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "misshaped.npz", W1=rng.normal(size=(32, 16)), b1=np.zeros(16),
             W2=rng.normal(size=(16, 10)), b2=np.zeros(10))
    port = sample_server(tmp_path / "misshaped.npz")
    result = smoke_check(local_http, "127.0.0.1", port, smoke)
    assert result is not None and result.startswith('POST /predict answered HTTP 500: {"error": "matmul'), result
    assert "\n" not in result


def test_the_sample_serves_from_a_read_only_root_without_capabilities_within_its_memory(docker_client, tmp_path):
    """What a deployment asks of the sample's container: a read-only root with a tmpfs /tmp, no capabilities,
    no new privileges, and the spec's memory limit, which it fits with room to spare."""
    from docker.types import Mount

    spec = load_spec(SAMPLE)
    image, _ = docker_client.images.build(path=str(SAMPLE), dockerfile=spec.deploy.dockerfile,
                                          tag="wbtest/mnist-numpy-serve:smoke", rm=True)
    model = tmp_path / "out"
    model.mkdir()
    trained = docker_client.containers.run(image.id, ["python", "train.py", "--epochs", "3"], remove=True,
                                           working_dir="/workspace", environment={"WORKBENCH_OUTPUT": "/out"},
                                           mounts=[Mount("/workspace", str(SAMPLE), type="bind", read_only=True),
                                                   Mount("/out", str(model), type="bind")])
    assert b"saved /out/model.npz" in trained
    port = free_port()
    container = docker_client.containers.run(
        image.id, ["python", "serve.py", "--model", "/model/model.npz", "--port", "8000"], detach=True,
        working_dir="/workspace", init=True, read_only=spec.deploy.read_only, tmpfs={"/tmp": ""},
        cap_drop=["ALL"], security_opt=["no-new-privileges"], mem_limit=spec.deploy.memory,
        mounts=[Mount("/workspace", str(SAMPLE), type="bind", read_only=True),
                Mount("/model/model.npz", str(model / "model.npz"), type="bind", read_only=True)],
        ports={"8000/tcp": ("127.0.0.1", port)}, labels={"workbench.test": "smoke"})
    try:
        wait_healthy(port)
        for _ in range(200):
            assert smoke_check(local_http, "127.0.0.1", port, spec.deploy.smoke) is None
        container.reload()
        assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
        assert container.attrs["HostConfig"]["Memory"] == spec.deploy.memory
        written = container.exec_run(["sh", "-c", "touch /x; touch /tmp/x && echo tmp-ok"])
        assert b"Read-only file system" in written.output and b"tmp-ok" in written.output
        used = container.stats(stream=False)["memory_stats"]["usage"]
        assert used < spec.deploy.memory / 3, f"{used / 2**20:.0f} MiB used of a {spec.deploy.memory / 2**20:.0f} MiB limit"
    finally:
        container.remove(force=True)
