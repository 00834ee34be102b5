"""Runs on an SSH host end to end, beside the same on the local engine. The "host" is the remote test env
(tests/remote_hosts.py): a second Docker engine on this machine that only a loopback sshd (127.0.0.3)
reaches, with busybox:latest loaded; so the figures are Workbench's and the SSH transport's cost, not a
network's. Everything runs with a temporary WORKBENCH_HOME; needs root, dockerd, sshd, ip, iptables and the
main engine's busybox:latest (as the remote tests do). Holds the remote env's lock while it runs.

    python benchmarks/remote_runs.py [-n 5] [--points 1000000] [--keys 1] [--files 300] [--mb 5] [--skip FIGURES]

Prints (medians of -n, remote and local interleaved):
  1. launch: `workbench run P --machine gpu-a` (no --wait) from the command's start to its container running
     (the engine's State.StartedAt), with the image and the snapshot already on the host; the same with
     `--machine local`. Also: to the command's exit, to the run record's started_at, and when each progress
     line appeared on stderr (where the time goes).      Target: remote <= 1.0 s.
  2. `workbench run P --wait` of a busybox run that writes one metric, remote vs local.
                                                          Target: remote <= local + 0.5 s.
  3. ingest: the experiment (busybox) generates --points points (--keys per JSON line) in its /tmp, then
     cats them to $WORKBENCH_METRICS at once; launched and waited for through the facade
     (`Workbench().launch(...)`, `.wait(id)`), timed from that first write (the mtime of a file it touches
     just before) until wait() returns with every point committed; checked again with `workbench runs show
     ID --json`. Remote: read over SFTP while the run lasts and after.  Target: remote >= 100,000 points/s.
  4. snapshot bytes sent by `workbench run --machine gpu-a --wait` of a fresh --files/--mb project: first
     launch, unchanged, after a one-file edit (from the progress lines, and the growth of the host's
     object store measured on disk).                      Target: unchanged 0; edit: that file's bytes only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import docker  # noqa: E402

from helpers import Result  # noqa: E402
from remote_hosts import (State, acquire_lock, build, clean_up_after_crashed_session, register,  # noqa: E402
                          release_lock, tear_down)

SPEC = r"""
[project]
name = "bench-remote"
[experiments.hold]
image = "busybox:latest"
command = ["sleep", "{seconds}"]
params = { seconds = 120 }
[experiments.quick]
image = "busybox:latest"
command = ["sh", "-c", "echo '{\"step\": 1, \"x\": 1}' >> $WORKBENCH_METRICS"]
[experiments.flood]
image = "busybox:latest"
command = ["sh", "flood.sh"]
params = { lines = 1000000, keys = 1 }
"""
# The points are generated first (in the container's /tmp, untimed), then written to $WORKBENCH_METRICS at
# once with cat: the ingestion, not busybox awk, is what is timed. The first write's time is the mtime of
# out/first (busybox's date has no sub-second format).
FLOOD = r"""awk -v n="$WB_PARAM_LINES" -v k="$WB_PARAM_KEYS" 'BEGIN {
  for (i = 0; i < n; i++) {
    line = "{\"step\": " i
    for (j = 0; j < k; j++) line = line ", \"m" j "\": " (i * 0.5 + j)
    print line "}"
  }
}' > /tmp/points.jsonl
touch "$WORKBENCH_OUTPUT/first"
cat /tmp/points.jsonl > "$WORKBENCH_METRICS"
touch "$WORKBENCH_OUTPUT/last"
"""
MACHINE = "gpu-a"


class Cli:
    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "WORKBENCH_HOME": str(home)}
        self.env.pop("WORKBENCH_DEBUG", None)

    def __call__(self, *args: str, timeout: float = 300) -> Result:
        done = subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env)
        return Result(done.returncode, done.stdout, done.stderr)

    def timed(self, *args: str, timeout: float = 300) -> tuple[Result, float, float, list[tuple[float, str]]]:
        """Runs the command; returns (result, wall-clock start (time.time()), seconds it took, [(seconds after
        start, stderr line)] as each line arrived)."""
        lines: list[tuple[float, str]] = []
        out: list[str] = []
        wall = time.time()
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "workbench", *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=self.env)
        reader = threading.Thread(target=lambda: out.append(process.stdout.read()), daemon=True)
        reader.start()
        for line in process.stderr:
            lines.append((time.perf_counter() - started, line.rstrip("\n")))
        code = process.wait(timeout=timeout)
        elapsed = time.perf_counter() - started
        reader.join()
        result = Result(code, "".join(out), "\n".join(line for _, line in lines))
        if code != 0:
            raise SystemExit(f"workbench {' '.join(args)} failed ({code}): {result.err[-1500:]}")
        return result, wall, elapsed, lines


def engine_time(text: str) -> float:
    """Docker's RFC 3339 timestamp (nanoseconds, Z) as epoch seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    stamp = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return stamp + float(f"0.{frac or '0'}")


def container_of(client, run_id: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        found = client.containers.list(all=True, filters={"label": f"workbench.run-id={run_id}"})
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise SystemExit(f"no container labelled workbench.run-id={run_id}")
        time.sleep(0.02)


def phase(line: str) -> str:
    """A progress line without its varying parts (ids, hashes, counts, times)."""
    line = re.sub(r"\b[0-9a-f]{8,}\b", "ID", line)
    return re.sub(r"\d[\d,.]*", "N", line)[:70]


def med(samples: list[float], digits: int = 3) -> float:
    return round(statistics.median(samples), digits)


def launch_figures(cli: Cli, project: Path, clients: dict, n: int) -> dict:
    """Figure 1: command start -> container running, image and snapshot already where the run runs."""
    samples: dict[str, dict[str, list[float]]] = {m: {"to_container_running_s": [], "to_command_exit_s": [],
                                                      "to_record_started_at_s": []} for m in clients}
    phases: dict[str, dict[str, list[float]]] = {m: {} for m in clients}
    for machine in clients:  # warm: the snapshot sent (remote), the DB made, the page cache
        warm = cli("run", str(project), "-e", "hold", "--machine", machine, "--json")
        assert warm.code == 0, warm.err
        cli("runs", "cancel", warm.json()["id"])
    for _ in range(n):
        for machine, client in clients.items():
            result, wall, elapsed, lines = cli.timed("run", str(project), "-e", "hold", "--machine", machine, "--json")
            run = result.json()
            container = container_of(client, run["id"])
            container.reload()
            started = engine_time(container.attrs["State"]["StartedAt"])
            samples[machine]["to_container_running_s"].append(started - wall)
            samples[machine]["to_command_exit_s"].append(elapsed)
            samples[machine]["to_record_started_at_s"].append(run["started_at"] - wall)
            for at, line in lines:
                phases[machine].setdefault(phase(line), []).append(at)
            cancelled = cli("runs", "cancel", run["id"])
            assert cancelled.code == 0, cancelled.err
    return {machine: {**{k: med(v) for k, v in figures.items()},
                      "stderr_lines_at_s": {k: med(v) for k, v in phases[machine].items()}}
            for machine, figures in samples.items()}


def wait_figures(cli: Cli, project: Path, machines: list[str], n: int) -> dict:
    """Figure 2: `run --wait` of a run that writes one metric, end to end."""
    samples: dict[str, list[float]] = {m: [] for m in machines}
    phases: dict[str, dict[str, list[float]]] = {m: {} for m in machines}
    for machine in machines:
        cli.timed("run", str(project), "-e", "quick", "--machine", machine, "--wait")
    for _ in range(n):
        for machine in machines:
            result, _, elapsed, lines = cli.timed("run", str(project), "-e", "quick", "--machine", machine, "--wait")
            assert "succeeded" in result.err, result.err
            samples[machine].append(elapsed)
            for at, line in lines:
                phases[machine].setdefault(phase(line), []).append(at)
    out = {m: {"wait_end_to_end_s": med(s), "stderr_lines_at_s": {k: med(v) for k, v in phases[m].items()}}
           for m, s in samples.items()}
    remote, local = (out[m]["wait_end_to_end_s"] for m in machines)
    out["remote_minus_local_s"] = round(remote - local, 3)
    return out


def ingest_figures(cli: Cli, project: Path, machines: list[str], points: int, keys: int) -> dict:
    """Figure 3: an experiment's points, first write -> all committed (facade launch + wait)."""
    from workbench.services import Workbench

    lines = points // keys
    result: dict[str, object] = {"points": lines * keys, "keys_per_line": keys}
    for machine in machines:
        wb = Workbench()
        try:
            run = wb.launch(str(project), "flood", [f"lines={lines}", f"keys={keys}"], machine=machine)
            wb.wait(run.id)
            done = time.time()
            record = wb._services.store.get_run(run.id)
            committed = wb._services.store.metric_count(record["seq"])
            out = Path(record["handle"]["run_dir"]) / "out"
            first, last = (out / "first").stat().st_mtime, (out / "last").stat().st_mtime
        finally:
            wb.close()
        shown = cli("runs", "show", run.id, "--json")
        assert shown.code == 0, shown.err
        queryable = sum(m["points"] for m in shown.json()["metrics"].values())
        assert record["status"] == "succeeded", record
        assert committed == queryable == lines * keys, (committed, queryable, lines * keys)
        result[machine] = {
            "experiment_writing_s": round(last - first, 3),
            "first_write_to_all_queryable_s": round(done - first, 3),
            "after_experiment_ended_s": round(done - last, 3),
            "points_per_s": round(committed / (done - first)),
        }
    return result


def make_upload_project(root: Path, files: int, total: int) -> Path:
    rng = random.Random(7)
    project = root / "upload-project"
    project.mkdir()
    (project / "workbench.toml").write_text(SPEC)
    large = max(1, files // 10)
    large_size, small_size = total * 9 // 10 // large, max(1, total // 10 // max(1, files - large))
    for i in range(files):
        folder = project / f"pkg{i % 10}" / f"sub{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i}.py").write_bytes(rng.randbytes(large_size if i < large else small_size))
    (project / "train.py").write_text("".join(f"print('step {i}')\n" for i in range(200)))
    return project


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) if path.exists() else 0


def upload_figures(cli: Cli, root: Path, host_dir: Path, files: int, mb: float) -> dict:
    """Figure 4: what `workbench run --machine` sends of a project: first, unchanged, one file edited."""
    project = make_upload_project(root, files, int(mb * 1e6))
    objects = host_dir / "snapshots" / "objects"
    result: dict[str, object] = {"project_files": files + 2, "project_bytes": tree_bytes(project)}

    def launch(label: str) -> None:
        before = tree_bytes(objects)
        _, _, elapsed, lines = cli.timed("run", str(project), "-e", "quick", "--machine", MACHINE, "--wait")
        said = [line for _, line in lines if "→" in line]
        result[label] = {"progress": said, "host_object_store_grew_bytes": tree_bytes(objects) - before,
                         "run_wait_s": round(elapsed, 3)}

    launch("first_launch")
    launch("unchanged")
    with open(project / "train.py", "a") as fh:
        fh.write("print('one more line')\n")
    result["edited_file_bytes"] = (project / "train.py").stat().st_size
    launch("one_file_edit")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5, help="launches per machine for figures 1 and 2")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1, help="metric keys per JSON line (points = lines x keys)")
    parser.add_argument("--files", type=int, default=300, help="figure 4's project: files ...")
    parser.add_argument("--mb", type=float, default=5, help="... and MB in all")
    parser.add_argument("--skip", default="", help="comma-separated figures to skip: launch,wait,ingest,upload")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    if os.geteuid() != 0:
        raise SystemExit("needs root (the remote env makes a bridge, iptables rules and network namespaces)")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="wb-bench-remote-runs-"))
    home = scratch / "home"
    home.mkdir()
    os.environ["WORKBENCH_HOME"] = str(home)  # for the facade (figure 3)
    os.environ.pop("WORKBENCH_DEBUG", None)
    cli = Cli(home)
    project = scratch / "project"
    project.mkdir()
    (project / "workbench.toml").write_text(SPEC)
    (project / "flood.sh").write_text(FLOOD)
    host_dir = scratch / "host"

    lock = acquire_lock()
    state, env = State(), None
    local = docker.from_env(timeout=60)
    result: dict[str, object] = {"n": args.n}
    try:
        clean_up_after_crashed_session()
        started = time.perf_counter()
        env = build(state)
        result["remote_env_build_s"] = round(time.perf_counter() - started, 1)
        register(cli, MACHINE, env.gpu, env.user_key, extra=("--dir", str(host_dir)))
        clients = {MACHINE: env.docker, "local": local}
        if "launch" not in skip:
            result["1_launch"] = {**launch_figures(cli, project, clients, args.n), "target": "remote <= 1.0 s"}
        if "wait" not in skip:
            result["2_run_wait"] = {**wait_figures(cli, project, [MACHINE, "local"], args.n),
                                    "target": "remote <= local + 0.5 s"}
        if "ingest" not in skip:
            result["3_ingest"] = {**ingest_figures(cli, project, [MACHINE, "local"], args.points, args.keys),
                                  "target": "remote >= 100000 points/s"}
        if "upload" not in skip:
            result["4_snapshot_sent"] = {**upload_figures(cli, scratch, host_dir, args.files, args.mb),
                                         "target": "unchanged: 0 bytes; one-file edit: that file's bytes only"}
    finally:
        try:
            for container in local.containers.list(all=True, filters={"label": "workbench.project=bench-remote"}):
                container.remove(force=True)
            local.close()
            tear_down(env, state)
        finally:
            release_lock(lock)
            shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
