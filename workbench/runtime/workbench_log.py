"""workbench_log: record metrics from a Workbench run, a script or a notebook cell.

    from workbench_log import log
    log(step=i, loss=loss, acc=acc)

Each call appends one JSON line, `{"step": 3, "loss": 0.41}`, to the file $WORKBENCH_METRICS names (Workbench
sets it in every run and puts this module on the run's PYTHONPATH). The line goes out in one write(2) on a
file opened with O_APPEND, so lines from threads and forked workers (DataLoader) never interleave, and it is
on disk for Workbench to read as soon as log returns. Values: int, float (NaN and infinities kept, written as
NaN/Infinity), or a scalar with .item() (numpy, torch); a bool, a string or a tensor of several values raises
TypeError naming the metric. Stdlib only, and nothing slow to import."""

import json
import os
import sys

METRICS_ENV = "WORKBENCH_METRICS"

__all__ = ["log"]

_handle = None  # (path, fd), kept open; a forked worker shares it, and O_APPEND keeps its lines whole
_warned_unset = False


def log(_metrics=None, *, step=None, ts=None, **metrics):
    """Appends one line of metrics. `step` (an int) orders the points, the line's ordinal when left out;
    `ts` (seconds since the epoch) is when they were measured, the time Workbench reads them when left out.
    Metric names that are not Python names go in a dict: log({"val/loss": 0.3}, step=2)."""
    record = {}
    if step is not None:
        record["step"] = _step(step)
    if ts is not None:
        record["ts"] = _number("ts", ts)
    for name, value in (*(_metrics or {}).items(), *metrics.items()):
        if not isinstance(name, str):
            raise TypeError("workbench_log: a metric name is a string, got %r" % (name,))
        record[name] = _number(name, value)
    path = os.environ.get(METRICS_ENV)
    if not path:
        _note_unset()
        return
    _write(path, (json.dumps(record) + "\n").encode("utf-8"))


def _step(value):
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError("workbench_log: step must be an int, got %s" % _described(value))
    return value.__index__()


def _number(name, value):
    kind = type(value)
    if kind is int or kind is float:
        return value
    if isinstance(value, bool):
        raise TypeError("workbench_log: %s is a bool; log it as a number (int(%s))" % (name, name))
    if isinstance(value, (int, float)):  # a subclass, like numpy.float64: written as the plain number
        return float(value) if isinstance(value, float) else int(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            scalar = item()
        except (ValueError, RuntimeError, TypeError):
            raise TypeError("workbench_log: %s is not a single number (%s)" % (name, _described(value))) from None
        if type(scalar) in (int, float):
            return scalar
    raise TypeError("workbench_log: %s is not a number (%s)" % (name, _described(value)))


def _described(value):
    text = repr(value)
    return "%s %s" % (type(value).__name__, text if len(text) <= 40 else text[:37] + "...")


def _write(path, line):
    global _handle
    if _handle is None or _handle[0] != path:
        # Two threads racing here each open a descriptor; both work, so neither is closed under the other.
        _handle = (path, os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    fd = _handle[1]
    while line:
        line = line[os.write(fd, line):]


def _note_unset():
    global _warned_unset
    if not _warned_unset:
        _warned_unset = True
        sys.stderr.write("[workbench] %s is not set (not in a Workbench run): metrics are not recorded\n"
                         % METRICS_ENV)
