"""Train a one-hidden-layer MLP on the UCI handwritten digits (8x8) with numpy only.

Workbench contract:
  * one JSON line per epoch is appended to $WORKBENCH_METRICS (if set);
  * the trained model is saved to $WORKBENCH_OUTPUT/model.npz (default: ./model.npz);
  * nothing else is written; the working directory may be read-only.
"""
import argparse
import gzip
import json
import os
import signal
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "data", "digits.csv.gz")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--hidden", type=int, default=64, help="hidden units (0 = softmax regression)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-frac", type=float, default=0.2)
    p.add_argument("--data", default=DEFAULT_DATA, help="gzipped CSV: 64 pixels (0..16) + label per row")
    a = p.parse_args(argv)
    if not a.lr > 0 or a.epochs < 1 or a.hidden < 0 or a.batch_size < 1 or not 0 < a.test_frac < 1:
        p.error("need lr > 0, epochs >= 1, hidden >= 0, batch-size >= 1, 0 < test-frac < 1")
    return a


def load_digits(path):
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return raw[:, :64] / 16.0, raw[:, 64].astype(np.int64)


def init_params(rng, n_in, n_hidden, n_out):
    if n_hidden == 0:
        return {"W2": np.zeros((n_in, n_out)), "b2": np.zeros(n_out)}
    return {
        "W1": rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_hidden)),
        "b1": np.zeros(n_hidden),
        "W2": rng.normal(0.0, np.sqrt(1.0 / n_hidden), (n_hidden, n_out)),
        "b2": np.zeros(n_out),
    }


def forward(params, x):
    """Return (logits, hidden activations or x itself for softmax regression)."""
    h = np.maximum(x @ params["W1"] + params["b1"], 0.0) if "W1" in params else x
    return h @ params["W2"] + params["b2"], h


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def evaluate(params, x, y):
    logits, _ = forward(params, x)
    loss = -log_softmax(logits)[np.arange(len(y)), y].mean()
    return float(loss), float((logits.argmax(axis=1) == y).mean())


def sgd_step(params, x, y, lr):
    logits, h = forward(params, x)
    logp = log_softmax(logits)
    loss = -logp[np.arange(len(y)), y].mean()
    d = np.exp(logp)
    d[np.arange(len(y)), y] -= 1.0
    d /= len(y)
    grads = {"W2": h.T @ d, "b2": d.sum(axis=0)}
    if "W1" in params:
        dh = (d @ params["W2"].T) * (h > 0)
        grads["W1"] = x.T @ dh
        grads["b1"] = dh.sum(axis=0)
    for k, g in grads.items():
        params[k] -= lr * g
    return float(loss)


def main(argv=None):
    # As PID 1 in a container, SIGTERM is ignored unless handled: exit promptly on stop/restart.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)

    x, y = load_digits(args.data)
    perm = rng.permutation(len(y))
    n_test = int(round(len(y) * args.test_frac))
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    x_tr, y_tr, x_te, y_te = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    print(f"data: {len(y_tr)} train / {len(y_te)} test samples, {x.shape[1]} features", flush=True)

    params = init_params(rng, x.shape[1], args.hidden, 10)
    metrics_path = os.environ.get("WORKBENCH_METRICS")
    metrics = open(metrics_path, "a", encoding="utf-8") if metrics_path else None
    t0 = time.perf_counter()
    try:
        for epoch in range(1, args.epochs + 1):
            order = rng.permutation(len(y_tr))
            losses = []
            for i in range(0, len(order), args.batch_size):
                b = order[i:i + args.batch_size]
                losses.append(sgd_step(params, x_tr[b], y_tr[b], args.lr))
            train_loss = float(np.mean(losses))
            if not np.isfinite(train_loss):
                print(f"epoch {epoch}: loss diverged (lr={args.lr} too high?)", file=sys.stderr, flush=True)
                return 1
            _, train_acc = evaluate(params, x_tr, y_tr)
            test_loss, test_acc = evaluate(params, x_te, y_te)
            rec = {"step": epoch, "loss": round(train_loss, 6), "acc": round(test_acc, 6),
                   "train_acc": round(train_acc, 6), "test_loss": round(test_loss, 6)}
            if metrics:
                metrics.write(json.dumps(rec) + "\n")
                metrics.flush()
            print(f"epoch {epoch:3d}/{args.epochs}  loss {train_loss:.4f}  train_acc {train_acc:.4f}  "
                  f"test_loss {test_loss:.4f}  test_acc {test_acc:.4f}", flush=True)
    finally:
        if metrics:
            metrics.close()

    out_dir = os.environ.get("WORKBENCH_OUTPUT", ".")
    os.makedirs(out_dir, exist_ok=True)
    out_path = os.path.join(out_dir, "model.npz")
    np.savez(out_path, **params)
    print(f"saved {out_path}  (test_acc {test_acc:.4f}, {time.perf_counter() - t0:.2f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
