"""workbench/formatting.py: the one home of the text both front ends show (times, durations, sizes, params and
metrics), so that `workbench runs list` and the Runs screen cannot drift apart."""

from __future__ import annotations

import time
from types import SimpleNamespace as Run

from workbench.formatting import (EngineOutput, duration, human_bytes, number_text, pairs, run_seconds,
                                  seconds_text, short_value, size, started, when)


def test_durations_read_the_same_in_the_cli_and_the_app():
    assert [seconds_text(s) for s in (None, 0.04, 59.94, 60, 187, 7500)] == ["-", "0.0s", "59.9s", "1m00s",
                                                                           "3m07s", "2h05m"]
    run = Run(started_at=1000.0, finished_at=1187.0)
    assert run_seconds(run, now=5000.0) == 187.0 and duration(run, now=5000.0) == "3m07s"
    assert run_seconds(Run(started_at=1000.0, finished_at=None), now=1012.5) == 12.5  # still running
    assert run_seconds(Run(started_at=None), now=1.0) is None and duration(Run(started_at=None), 1.0) == "-"
    assert run_seconds(Run(started_at=1000.0, finished_at=990.0), now=0) == 0.0  # a clock step never goes negative


def test_values_keep_four_digits_and_each_front_end_its_nan():
    assert [number_text(v) for v in (0.123456, 2000, "adam", 1e-7)] == ["0.1235", "2000", "adam", "1e-07"]
    assert number_text(float("nan")) == "nan" and short_value(float("nan")) == "NaN"  # the CLI's and the app's
    assert str(pairs({"a": 0.5, "b": 2, "c": 3}, limit=2)) == "a=0.5 b=2 …"
    assert str(pairs({"loss": float("nan")}, value_text=number_text)) == "loss=nan"
    assert pairs({"name": "a\x1b[2Jb"}).items == ("name=a\\x1b[2Jb",)  # terminal escapes shown, never sent


def test_sizes_times_and_engine_output():
    assert [human_bytes(n) for n in (500, 3 << 20, 5 << 30)] == ["0.5 KiB", "3.0 MiB", "5.0 GiB"]
    assert [size(n) for n in (None, 500, 3 << 20, 1 << 40)] == ["n/a", "500 B", "3.0 MiB", "1.0 TiB"]
    stamp = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    assert when(stamp) == "2026-03-04 05:06:07" and when(None) == "-"
    assert started(Run(started_at=None, created_at=stamp)) == "03-04 05:06"
    assert started(Run(started_at=stamp), "%Y-%m-%d %H:%M:%S") == "2026-03-04 05:06:07"
    assert started(Run(started_at=None, created_at=None)) == "-"
    line = EngineOutput("\x1b[91mStep 1/2\x1b[0m")
    assert isinstance(line, str) and line == "\x1b[91mStep 1/2\x1b[0m"
