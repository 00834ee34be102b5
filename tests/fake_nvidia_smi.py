#!/usr/bin/env python3
"""A stand-in `nvidia-smi` for the SSH test hosts: replays the real H100 captures in
tests/fixtures/gpu/h100-80gb (query-gpu CSV, -L), answering whichever --query-gpu fields are asked for."""

import os
import sys
import time

FIXTURES = os.environ.get("WB_GPU_FIXTURES") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
ALIASES = {"clocks.sm": "clocks.current.sm"}


def count():
    """How many GPUs this host has: the number in WB_GPU_COUNT_FILE (a test's fleet), else the capture's."""
    path = os.environ.get("WB_GPU_COUNT_FILE")
    if path and os.path.exists(path):
        return int(open(path).read().strip() or 1)
    return None


def twin(uuid, i):
    """The i-th GPU of a fleet host: the captured GPU's uuid with its last two digits numbered (0: itself)."""
    return uuid if i == 0 else f"{uuid[:-2]}{i:02d}"


def rows():
    with open(os.path.join(FIXTURES, "query-gpu-idle.csv")) as fh:
        header, *lines = [line.rstrip("\n") for line in fh if line.strip()]
    names = [h.strip().split(" [")[0] for h in header.split(",")]
    captured = [dict(zip(names, [v.strip() for v in line.split(",")])) for line in lines]
    n = count()
    if n is None:
        yield from captured
        return
    for i in range(n):
        yield {**captured[0], "index": str(i), "uuid": twin(captured[0]["uuid"], i)}


UNITS = {"MiB", "%", "W", "MHz"}


def processes():
    """(pid, name, MiB) rows of the process table captured while a python3 process held GPU memory."""
    with open(os.path.join(FIXTURES, "nvidia-smi-with-process.txt")) as fh:
        for line in fh:
            parts = line.strip("| \n").split()
            if len(parts) >= 7 and parts[0].isdigit() and parts[3].isdigit() and parts[-1].endswith("MiB"):
                yield parts[3], parts[5], parts[-1][:-3]


def strip_unit(value):
    number, _, unit = value.rpartition(" ")
    return number if unit in UNITS else value


def main(argv):
    if "-L" in argv:
        listing = open(os.path.join(FIXTURES, "nvidia-smi-L.txt")).read()
        if count() is not None:
            first = listing.splitlines()[0]
            uuid = first.split("UUID: ")[1].rstrip(")")
            listing = "".join(first.replace("GPU 0:", f"GPU {i}:").replace(uuid, twin(uuid, i)) + "\n"
                              for i in range(count()))
        sys.stdout.write(listing)
        return 0
    apps = next((a.split("=", 1)[1] for a in argv if a.startswith("--query-compute-apps=")), None)
    if apps is not None:
        listed = os.environ.get("WB_GPU_APPS_FILE")  # a test's own process table: none while the file is absent
        if listed:
            if os.path.exists(listed):
                sys.stdout.write(open(listed).read())
            return 0
        uuid = next(rows())["uuid"]
        for process in processes():
            values = {"gpu_uuid": uuid, "pid": process[0], "process_name": process[1], "used_memory": process[2]}
            print(", ".join(values.get(f, "[N/A]") for f in apps.split(",")))
        return 0
    query = next((a.split("=", 1)[1] for a in argv if a.startswith("--query-gpu=")), None)
    if query is None:
        sys.stdout.write(open(os.path.join(FIXTURES, "nvidia-smi-idle.txt")).read())
        return 0
    fields = query.split(",")
    fmt = next((a.split("=", 1)[1] for a in argv if a.startswith("--format=")), "csv")
    interval = next((int(argv[i + 1]) for i, a in enumerate(argv) if a == "-lms" and i + 1 < len(argv)), None)
    while True:
        for row in rows():
            values = [row.get(ALIASES.get(f, f), "[N/A]") for f in fields]
            if "nounits" in fmt:
                values = [strip_unit(v) for v in values]
            print(", ".join(values), flush=True)
        if interval is None:
            return 0
        time.sleep(interval / 1000)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
