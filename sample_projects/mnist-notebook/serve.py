"""Serves the model.npz train.ipynb saves: GET /health, POST /predict {"pixels": [64 numbers 0..16]} -> {"digit": n}.

Small on purpose: it loads the model before it listens, so /health answers 200 as soon as anything answers (a
deployment switches to it then), and a model it cannot load ends it with the reason (the deployment keeps the
version that serves). Stdlib and numpy; it writes nothing (a read-only root file system is enough)."""
import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def load(path):
    with np.load(path) as stored:
        weights = {name: stored[name] for name in stored.files}
    missing = {"W1", "b1", "W2", "b2"} - set(weights)
    if missing:
        raise SystemExit(f"{path} is not the notebook's model: no {', '.join(sorted(missing))}")
    return weights


def answer(weights, body):
    """(status, reply) for one /predict body."""
    try:
        pixels = np.asarray(json.loads(body)["pixels"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as e:
        return 400, {"error": f"expected {{\"pixels\": [64 numbers]}}: {e}"}
    if pixels.shape != (64,):
        return 400, {"error": f"expected 64 pixels, got {pixels.size}"}
    hidden = np.maximum(pixels / 16.0 @ weights["W1"] + weights["b1"], 0.0)
    return 200, {"digit": int((hidden @ weights["W2"] + weights["b2"]).argmax())}


class Handler(BaseHTTPRequestHandler):
    weights = None

    def log_message(self, *args):
        pass  # a line per request would drown the deployment's log

    def send(self, status, reply):
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send(*((200, {"status": "ok"}) if self.path == "/health" else (404, {"error": "not found"})))

    def do_POST(self):
        if self.path != "/predict":
            return self.send(404, {"error": "not found"})
        self.send(*answer(self.weights, self.rfile.read(int(self.headers.get("Content-Length") or 0))))


if __name__ == "__main__":
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--model", required=True)
    options.add_argument("--port", type=int, default=8000)
    args = options.parse_args()
    Handler.weights = load(args.model)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 in a container ignores SIGTERM unless handled
    ThreadingHTTPServer.request_queue_size = 128  # a switch under load overflows the default backlog of 5
    print(f"model {args.model} loaded; listening on port {args.port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", args.port), Handler).serve_forever()
