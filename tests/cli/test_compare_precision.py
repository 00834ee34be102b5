"""Issue 22, item 17: `runs compare` shows each metric's numbers with one precision (the same decimals in
every run's cell, last and best alike), integers as integers. Real runs (process executor)."""

from __future__ import annotations

import re

TRAIN = """
import json, os, sys
acc, loss = float(sys.argv[1]), float(sys.argv[2])
with open(os.environ["WORKBENCH_METRICS"], "a") as fh:
    fh.write(json.dumps({"tokens": 500, "acc": acc, "loss": loss}) + "\\n")
"""
SPEC = """
[project]
name = "precise"
[experiments.train]
image = "python:3.11-slim"
command = ["python3", "train.py", "{acc}", "{loss}"]
params = { acc = 0.9, loss = 1.0 }
"""


def test_each_metric_has_one_precision(cli, make_project):
    root = make_project(SPEC, {"train.py": TRAIN})
    ids = []
    for acc, loss in (("0.95", "0.5"), ("0.951234", "0.0123456"), ("1.0", "2.0")):
        run = cli("run", str(root), "-p", f"acc={acc}", "-p", f"loss={loss}", "--executor", "process", "--wait",
                  "--json")
        assert run.code == 0, run.err
        ids.append(run.json()["id"])
    shown = cli("runs", "compare", *ids)
    assert shown.code == 0, shown.err
    rows = {line.split("  ")[0].strip(): re.findall(r"-?\d+(?:\.\d+)?", line.split("  ", 1)[1])
            for line in shown.out.splitlines() if re.match(r"(acc|loss|tokens) (last|highest|lowest)", line)}
    assert set(rows) == {"acc last", "acc highest", "loss last", "loss lowest", "tokens last", "tokens highest"}, rows

    def decimals(number: str) -> int:
        return len(number.partition(".")[2])

    for metric in ("acc", "loss", "tokens"):
        numbers = [n for name, found in rows.items() if name.startswith(metric + " ") for n in found]
        assert len(numbers) == 6 and len({decimals(n) for n in numbers}) == 1, (metric, numbers)
    assert rows["acc last"] == ["0.9500", "0.9512", "1.0000"]  # 5 significant digits of the largest
    assert rows["loss last"] == ["0.5000", "0.0123", "2.0000"]
    assert rows["tokens last"] == ["500"] * 3


def test_one_diverged_run_does_not_hide_the_others_values():
    """Shared decimals from a 10000 would print 0.0123 and 0.0150 as 0 (and 0.031 and 0.029 both as 0.03):
    when the shared precision leaves a value fewer than 3 significant digits, each keeps its own 5."""
    from workbench.services.compare import figures

    assert figures([10000.0, 0.0123, 0.0150]) == ["10000", "0.0123", "0.015"]
    assert figures([152.3, 0.031, 0.029]) == ["152.3", "0.031", "0.029"]
    assert figures([0.95, 0.9512, 1.0]) == ["0.9500", "0.9512", "1.0000"]  # comparable values: shared
    assert figures([12.5, 0.5, None]) == ["12.500", "0.500", "-"]  # 3 digits left: still shared
