"""The smoke request against a real HTTP server on loopback: each way a version can fail it gives the one line
a deployment records, and a server that accepts and never answers is given up on within the timeout."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.projects.spec import Smoke
from workbench.registry.health import TIMEOUT
from workbench.registry.smoke import smoke_check

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


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def http_call(address, port, method="GET", path="/", body=None, headers=None):
    """The signature of the deployment's HTTP helper: an answer, or None when nothing answered in time."""
    conn = http.client.HTTPConnection(address, port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.read())
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


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
    return smoke_check(http_call, "127.0.0.1", port, smoke)


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
    assert smoke_check(http_call, "127.0.0.1", closed, Smoke("/predict", b"{}")) == \
        f"POST /predict gave no answer within {TIMEOUT:g} s"


def test_a_server_that_accepts_and_never_answers_is_given_up_on_within_the_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the connection; nothing ever reads or answers it
        started = time.monotonic()
        result = smoke_check(http_call, "127.0.0.1", silent.getsockname()[1], Smoke("/predict", b"{}"))
        waited = time.monotonic() - started
    assert result == f"POST /predict gave no answer within {TIMEOUT:g} s"
    assert TIMEOUT - 0.5 <= waited <= TIMEOUT + 1.5, waited
