"""Serve a model.npz from train.py: GET /health, POST /predict {"pixels": [64 numbers 0..16]}.

The server listens at once and loads the model beside it: /health answers 503 while it loads, 200 once it
is loaded, 500 (with the reason) if it cannot be loaded — so a deployment switches to it only when it can
answer. /predict answers 400 for a request that is not 64 numbers and 500 (with the reason) when the model
fails on one that is (a model trained for another input shape: /health cannot tell; the smoke request in
workbench.toml does). SERVE_LOAD_SECONDS (optional) makes loading take at least that long, as a big model
would. It writes no file: it runs on a read-only root file system."""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def predict(params, pixels):
    x = np.asarray(pixels, dtype=np.float64).reshape(1, 64) / 16.0
    h = np.maximum(x @ params["W1"] + params["b1"], 0.0) if "W1" in params else x
    return int((h @ params["W2"] + params["b2"]).argmax())


class Model:
    def __init__(self):
        self.params = None
        self.error = None

    def load(self, path):
        started = time.monotonic()
        try:
            with np.load(path) as f:
                params = {k: f[k] for k in f.files}
            if "W2" not in params:
                raise ValueError(f"{path} is not a model from train.py (no W2)")
        except Exception as e:  # noqa: BLE001 - said by /health
            self.error = f"cannot load {path}: {e}"
            print(self.error, file=sys.stderr, flush=True)
            return
        time.sleep(max(0.0, float(os.environ.get("SERVE_LOAD_SECONDS", "0")) - (time.monotonic() - started)))
        self.params = params
        print(f"model loaded from {path}", flush=True)


def make_handler(model):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass  # one line per request would drown the log at 50 requests/s

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                if model.params is not None:
                    self.reply(200, {"status": "ok"})
                elif model.error:
                    self.reply(500, {"status": "failed", "error": model.error})
                else:
                    self.reply(503, {"status": "loading"})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            if self.path != "/predict":
                return self.reply(404, {"error": "not found"})
            if model.params is None:
                return self.reply(503, {"error": model.error or "the model is loading"})
            try:
                data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                pixels = [float(p) for p in data["pixels"]]
                if len(pixels) != 64:
                    raise ValueError("need exactly 64 pixels")
            except (ValueError, KeyError, TypeError) as e:
                return self.reply(400, {"error": f"expected JSON {{\"pixels\": [64 numbers]}}: {e}"})
            try:
                digit = predict(model.params, pixels)
            except Exception as e:  # noqa: BLE001 - the model's fault, not the caller's: said as a 500
                return self.reply(500, {"error": str(e)})
            self.reply(200, {"digit": digit})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="0.0.0.0")
    args = p.parse_args()
    model = Model()
    # As PID 1 in a container, SIGTERM is ignored unless handled.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # a backlog of 128 (the stdlib's 5 overflows when the proxy switches versions under load: callers then
    # wait for TCP's 1 s retransmit or get a 502)
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer((args.host, args.port), make_handler(model))
    threading.Thread(target=model.load, args=(args.model,), daemon=True).start()
    print(f"listening on http://{args.host}:{args.port}, loading {args.model}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
