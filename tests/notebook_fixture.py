"""An executed notebook as the runner leaves it (nbformat 4, outputs as Jupyter's kernel writes them: a
stream on each channel, a result, a real PNG, an error with an ANSI traceback), and a recorded notebook
run whose output folder holds it, for the tests of `runs notebook` and the app's Notebook tab."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

NOTEBOOK_SPEC = {"name": "train", "command": ["python3", "-m", "workbench_nbrun", "train.ipynb"],
                 "notebook": "train.ipynb", "artifacts": ["train.ipynb"]}


def png(width: int, height: int) -> bytes:
    """A real PNG (grey, 8 bits) of that size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes([(x * 255) // max(width - 1, 1) for x in range(width)]) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PNG = png(64, 48)
TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mValueError\x1b[0m                                Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[4], line 1\x1b[0m\n\x1b[0;32m----> 1\x1b[0m \x1b[38;5;28;01mraise\x1b[39;00m "
    "\x1b[38;5;167;01mValueError\x1b[39;00m(\x1b[38;5;124m\"\x1b[39m\x1b[38;5;124mlr too high\x1b[39m\")",
    "\x1b[0;31mValueError\x1b[0m: lr too high",
]


def executed_notebook(long_output_lines: int = 250) -> dict:
    """The notebook: a markdown title, the parameters cell and the injected one, a loop printing on stdout
    and stderr, a result, a plot (PNG), `long_output_lines` printed lines, and a cell that raised."""
    def code(count, source, outputs, tags=()):
        return {"cell_type": "code", "execution_count": count, "id": f"c{count}",
                "metadata": {"tags": list(tags)} if tags else {}, "source": source, "outputs": outputs}
    cells = [
        {"cell_type": "markdown", "id": "m0", "metadata": {},
         "source": ["# Training MNIST\n", "\n", "A **small** model; `lr` is a parameter.\n"]},
        code(1, "lr = 0.1\nepochs = 2", [], tags=["parameters"]),
        code(2, "# Parameters\nlr = 0.3\n", [], tags=["injected-parameters"]),
        code(3, ["for epoch in range(epochs):\n", "    print(f\"epoch {epoch} loss {1 / (epoch + 1):.2f}\")\n",
                 "import sys; print('warning: slow disk', file=sys.stderr)\n", "lr * 2"],
             [{"output_type": "stream", "name": "stdout", "text": ["epoch 0 loss 1.00\n", "epoch 1 loss 0.50\n"]},
              {"output_type": "stream", "name": "stderr", "text": "warning: slow disk\n"},
              {"output_type": "execute_result", "execution_count": 3, "metadata": {},
               "data": {"text/plain": "0.6"}}]),
        code(4, "plt.plot(losses)",
             [{"output_type": "display_data", "metadata": {},
               "data": {"image/png": base64.b64encode(PNG).decode(), "text/plain": "<Figure size 640x480 with 1 Axes>"}}]),
        code(5, "for i in range(n):\n    print('row', i)",
             [{"output_type": "stream", "name": "stdout", "text": "".join(f"row {i}\n" for i in range(long_output_lines))}]),
        code(6, "raise ValueError(\"lr too high\")",
             [{"output_type": "error", "ename": "ValueError", "evalue": "lr too high", "traceback": TRACEBACK}]),
    ]
    return {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def add_notebook_run(wb, run_id: str, *, status: str = "failed", machine: str = "local", created: float,
                     notebook: dict | str | None = None) -> Path:
    """A recorded notebook run (train.ipynb) and, unless `notebook` is None, its executed notebook in the
    run's output folder; returns that file's path (written or not)."""
    active = status in ("queued", "running")
    wb._services.store.insert_run({
        "id": run_id, "project": "mnist-nb", "project_path": "/projects/mnist-nb", "experiment": "train",
        "status": status, "status_reason": None if active or status == "succeeded" else
        "notebook failed at cell 6/6 (raise ValueError(\"lr too high\")): ValueError: lr too high",
        "machine": machine, "executor": "docker", "created_at": created, "started_at": created + 1,
        "finished_at": None if active else created + 31, "exit_code": None if active else 1,
        "params": {"lr": 0.3}, "argv": NOTEBOOK_SPEC["command"], "spec": NOTEBOOK_SPEC,
    })
    path = wb.dirs.run_dir(run_id) / "out" / "train.ipynb"
    if notebook is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(notebook if isinstance(notebook, str) else json.dumps(notebook))
    return path
