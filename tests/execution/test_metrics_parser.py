"""The metric line contract, line by line (README, "Inside a run")."""

from __future__ import annotations

import json
import math

from workbench.execution.metrics_parser import parse_metric_lines

IDS = {}


def key_id(name: str) -> int:
    return IDS.setdefault(name, len(IDS) + 1)


def names(rows):
    back = {v: k for k, v in IDS.items()}
    return [(back[k], s, v) for k, s, _, v in rows]


def test_points_steps_and_ordinals():
    data = b'{"step": 3, "loss": 0.5, "acc": 1}\n{"loss": 0.25}\n\n{"step": 7.0, "loss": 0.1, "ts": 12.5}\n'
    batch, lines = parse_metric_lines(data, 10, now=99.0, key_id=key_id)
    assert lines == 4
    assert names(batch.rows) == [("loss", 3, 0.5), ("acc", 3, 1.0), ("loss", 11, 0.25), ("loss", 7, 0.1)]
    assert [r[2] for r in batch.rows] == [99.0, 99.0, 99.0, 12.5]
    assert batch.summary == {"loss": 0.1, "acc": 1.0}
    assert (batch.bad_lines, batch.bad_values) == (0, 0)


def test_non_finite_kept_garbage_counted():
    data = (b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": "text", "e": true, "f": null, "g": [1]}\n'
            b'not json\n[1, 2]\n"str"\n{"h": 1\n')
    batch, lines = parse_metric_lines(data, 0, now=1.0, key_id=key_id)
    values = {k: v for k, _, v in names(batch.rows)}
    assert values["a"] is None  # NaN is stored as NULL and read back as NaN
    assert values["b"] == math.inf and values["c"] == -math.inf
    assert batch.bad_values == 4 and batch.bad_lines == 4
    assert json.dumps(batch.summary, allow_nan=False)  # strict JSON for the run summary


def test_out_of_range_numbers_never_break_ingestion():
    data = (b'{"step": 100000000000000000000, "x": 100000000000000000000, "ts": 1e300}\n'
            b'{"step": 1e300, "y": 1}\n{"z": ' + b"9" * 400 + b'}\n')
    batch, _ = parse_metric_lines(data, 0, now=5.0, key_id=key_id)
    rows = names(batch.rows)
    assert rows[0] == ("x", 0, 1e20) and batch.rows[0][2] == 5.0  # step -> ordinal, ts -> now
    assert rows[1] == ("y", 1, 1.0)
    assert batch.bad_values == 1  # an integer too large for a float
    assert all(-2**63 < s < 2**63 for _, s, _ in rows)
