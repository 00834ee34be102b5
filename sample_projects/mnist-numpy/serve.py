"""Serve a model.npz from train.py: GET /health, POST /predict {"pixels": [64 numbers 0..16]}."""
import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def predict(params, pixels):
    x = np.asarray(pixels, dtype=np.float64).reshape(1, 64) / 16.0
    h = np.maximum(x @ params["W1"] + params["b1"], 0.0) if "W1" in params else x
    return int((h @ params["W2"] + params["b2"]).argmax())


def make_handler(params):
    class Handler(BaseHTTPRequestHandler):
        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                self.reply(200, {"status": "ok"})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            if self.path != "/predict":
                return self.reply(404, {"error": "not found"})
            try:
                data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                pixels = data["pixels"]
                if len(pixels) != 64:
                    raise ValueError("need exactly 64 pixels")
                self.reply(200, {"digit": predict(params, pixels)})
            except (ValueError, KeyError, TypeError) as e:
                self.reply(400, {"error": f"expected JSON {{\"pixels\": [64 numbers]}}: {e}"})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="0.0.0.0")
    args = p.parse_args()
    with np.load(args.model) as f:
        params = {k: f[k] for k in f.files}
    # As PID 1 in a container, SIGTERM is ignored unless handled.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer((args.host, args.port), make_handler(params))
    print(f"serving {args.model} on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
