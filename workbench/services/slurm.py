"""What a Slurm cluster has, for the Machines screen: its partitions, their nodes by state and their GPUs in
use, from one `sinfo` per poll interval (the cluster's own setting: sites rate-limit their scheduler)."""

from __future__ import annotations

import time
from typing import Any

from workbench.errors import WorkbenchError
from workbench.services.context import Services

SINFO = ["sinfo", "--noheader", "--Node", "--Format=Partition:|,StateLong:|,Gres:|,GresUsed:|"]
_seen: dict[str, tuple[float, dict[str, Any]]] = {}  # machine -> (when, summary): this process's last sinfo


def _gpus(field: str) -> int:
    """gpu:2, gpu:a100:4(S:0-1), gpu:0 … -> the count (summed over types)."""
    total = 0
    for item in field.split(","):
        parts = item.split("(")[0].split(":")
        if parts and parts[0] == "gpu" and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def summarize(output: str) -> dict[str, Any]:
    partitions: dict[str, dict[str, Any]] = {}
    for line in output.splitlines():
        fields = line.split("|")
        if len(fields) < 4:
            continue
        name, state, gres, used = (f.strip() for f in fields[:4])
        part = partitions.setdefault(name.rstrip("*"), {"default": name.endswith("*"), "nodes": {}, "gpus": 0,
                                                         "gpus_used": 0})
        part["nodes"][state] = part["nodes"].get(state, 0) + 1
        part["gpus"] += _gpus(gres)
        part["gpus_used"] += _gpus(used)
    return {"partitions": partitions}


def cluster(wb: Services, machine: str) -> dict[str, Any]:
    """The cluster's partitions as sinfo said at most one poll interval ago (`error` when it did not answer)."""
    record = wb.store.get_machine(machine) or {}
    poll = float(((record.get("config") or {}).get("slurm") or {}).get("poll") or 30)
    found = _seen.get(machine)
    if found and time.monotonic() - found[0] < poll:
        return found[1]
    try:
        code, out, err = wb.executors.connection(machine).run(SINFO, timeout=30)
        if code != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            summary: dict[str, Any] = {"error": lines[-1] if lines else f"sinfo exited {code}", "partitions": {}}
        else:
            summary = summarize(out.decode(errors="replace"))
    except WorkbenchError as exc:
        summary = {"error": exc.message, "partitions": {}}
    _seen[machine] = (time.monotonic(), summary)
    return summary
