"""Headless commands over the same services as the TUI. `--json` output is documented in docs/cli-json.md.

Exit codes: 0 success; 1 a user-caused or environmental error (one line on stderr) or a run that did not
succeed under --wait; 2 command-line syntax (argparse); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any, Sequence

from workbench.errors import WorkbenchError
from workbench.execution.images import human_bytes, run_image_size
from workbench.textsafe import log_text, printable

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "lost")


# output helpers -----------------------------------------------------------------------------------
from workbench.cli_output import emit_json as _emit_json, say as _say  # noqa: E402


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _duration(run: dict[str, Any]) -> float | None:
    if not run.get("started_at"):
        return None
    end = run.get("finished_at") or time.time()
    return max(0.0, end - run["started_at"])


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _summary_items(values: dict[str, Any]) -> list[str]:
    return [printable(f"{k}={_fmt_value(v)}") for k, v in values.items()]


def _summary_text(values: dict[str, Any], limit: int = 3) -> str:
    """The first `limit` items whole, then `…` if some were left out (never an item cut short)."""
    items = _summary_items(values)
    return " ".join(items[:limit] + (["…"] if len(items) > limit else []))


def run_json(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "project", "experiment", "status", "status_reason", "machine", "executor", "created_at",
            "started_at", "finished_at", "exit_code", "params", "summary", "metric_points", "verdict",
            "gpu_uuids", "gpu_model", "driver")
    out = {k: run.get(k) for k in keys}
    out["duration"] = _duration(run)
    if run.get("hourly_cost") is not None:
        from workbench.store.cost import run_cost
        out["cost"] = run_cost(run, time.time())
    return out


# commands -----------------------------------------------------------------------------------------
def cmd_run(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile(wait=0)  # hosts' passes go on meanwhile: a launch never waits for another machine
    run = wb.launch(args.path, args.experiment, args.param, machine=args.machine, executor=args.executor,
                    priority=args.priority)
    if run.get("waiting") is not None and not args.wait:
        if args.json:
            _emit_json({**run_json(run), "priority": run.get("priority", 0)})
        else:
            print(run["id"])
            # the launch said "run ID queued: REASON": only where to look is added
            _say("it starts by itself when a machine can take it (`workbench queue` shows the queue)")
        return 0
    return _after_start(wb, run, args)


def cmd_rerun(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    run = wb.rerun(args.run, executor=args.executor)
    _say(f"run {run['id']} reruns {run['rerun_of']} from snapshot {run['snapshot'][:12]}")
    return _after_start(wb, run, args)


def _after_start(wb: Any, run: dict[str, Any], args: argparse.Namespace) -> int:
    if not args.wait:
        wb.follow_in_background(run["id"])
        if args.json:
            _emit_json(run_json(run))
        else:
            print(run["id"])
            _say(f"run {run['id']} started ({run['executor']}); follow it with `workbench runs logs {run['id']} --follow`")
        return 0
    if run.get("waiting") is not None:
        _say(f"waiting for run {run['id']} to start and end (Ctrl-C leaves it queued)")  # why: said by the launch
    else:
        _say(f"run {run['id']} started ({run['executor']}); waiting for it (Ctrl-C leaves it running)")
    progress = None if args.json else ProgressLine()
    sink = None if args.json else _log_printer(timestamps=False, progress=progress)
    try:
        final = wb.wait(run["id"], sink=sink, progress=progress.show if progress else None)
    except KeyboardInterrupt:
        wb.follow_in_background(run["id"])  # the run goes on; so does its ingestion
        _say(f"stopped waiting; run {run['id']} keeps running (`workbench runs logs {run['id']} --follow`)")
        return 130
    if args.json:
        _emit_json(run_json(final))
    else:
        _say(_verdict(final))
    return 0 if final["status"] == "succeeded" else 1


def _verdict(run: dict[str, Any]) -> str:
    text = f"run {run['id']} {run['status']} in {_fmt_duration(_duration(run))}"
    if run.get("status_reason"):
        text += f": {run['status_reason']}"
    if run.get("summary"):
        text += f" ({_summary_text(run['summary'], limit=6)})"
    if run.get("verdict"):
        text += f"; checks {run['verdict']}"
    return text


class ProgressLine:
    """The line a run is redrawing (its progress bar), kept as the terminal's last line below the log:
    redrawn in place with `\r`, cleared before log lines are printed above it. Only on a terminal."""

    def __init__(self) -> None:
        import threading

        self.enabled = sys.stdout.isatty()
        self.text = ""
        self.lock = threading.RLock()  # the log and the progress arrive on different threads under --wait

    def show(self, text: str) -> None:
        with self.lock:
            self.text = text
            self._draw()

    def _draw(self) -> None:
        if self.enabled:
            width = shutil.get_terminal_size().columns - 1
            sys.stdout.write("\r\x1b[K" + printable(self.text)[:width])
            sys.stdout.flush()

    def around(self, write: Any) -> None:
        """Runs `write` (log lines) with the progress line moved out of the way and drawn again after."""
        with self.lock:
            if self.enabled and self.text:
                sys.stdout.write("\r\x1b[K")
                sys.stdout.flush()
            write()
            if self.text:
                self._draw()


def _log_printer(timestamps: bool, raw: bool = False, progress: ProgressLine | None = None):
    """Log lines as a terminal would leave them (escape sequences dropped), or byte for byte with `raw`."""
    from workbench.execution.logformat import split_line

    out = sys.stdout.buffer

    def sink(data: bytes) -> None:
        if progress is not None:
            progress.around(lambda: write(data))
        else:
            write(data)

    def write(data: bytes) -> None:
        lines = []
        text = data.decode("utf-8", errors="replace")
        for line in text[:-1].split("\n") if text.endswith("\n") else text.split("\n"):  # not splitlines: \r
            stamp, _, body = split_line(line)
            body = body if raw else log_text(body)
            lines.append(f"{stamp} {body}" if timestamps else body)
        out.write(("\n".join(lines) + "\n").encode())
        out.flush()

    return sink


def cmd_runs_list(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    filters = dict(limit=args.limit or None, status=args.status, project=args.project, experiment=args.experiment)
    if args.json:
        sys.stdout.write(wb.store.list_runs_json(**filters, now=time.time()))
        sys.stdout.write("\n")
        return 0
    runs = wb.store.list_runs(**filters)
    if not runs:
        given = [f"--{name} {value}" for name in ("status", "project", "experiment")
                 if (value := getattr(args, name)) is not None]
        _say(f"no run matches {' '.join(given)}" if given else "no runs yet: start one with `workbench run PATH`")
        return 0
    from workbench.services.compare import lead_metrics

    for line in _runs_table(runs, shutil.get_terminal_size().columns, lead_metrics(wb, runs)):
        print(line)
    return 0


_LIST_HEADER = ("ID", "STATUS", "MACHINE", "PROJECT/EXPERIMENT", "PARAMS", "METRICS", "STARTED", "DURATION")
_MACHINE, _PROJECT, _PARAMS, _METRICS, _STARTED = 2, 3, 4, 5, 6


def _runs_table(runs: list[dict[str, Any]], available: int, lead: dict[str, str] | None = None) -> list[str]:
    """`runs list` in `available` columns: params and metrics in reading order (formatting.reading_order:
    the params that differ within the list first, each run's lead metric first), shown as whole items then
    `…` (`iterations=2000` is never cut to `iterations=20`); names end in `…`; the start time drops its year
    and seconds before anything narrows. `lead`: run id -> lead metric (compare.lead_metrics)."""
    from rich.cells import cell_len

    from workbench.tui.formatting import Pairs, elide, fit_items, reading_order, shown_status

    ordered = reading_order(runs, lead)

    def table(stamp: str) -> list[tuple[Any, ...]]:
        return [_LIST_HEADER] + [
            (run["id"], shown_status(run), printable(run.get("machine") or "local"),
             printable(f"{run['project']}/{run['experiment']}"),
             Pairs(_summary_items(params)), Pairs(_summary_items(metrics)),
             time.strftime(stamp, time.localtime(t)) if (t := run["started_at"] or run["created_at"]) else "-",
             _fmt_duration(_duration(run))) for run, (params, metrics) in zip(runs, ordered)]

    def natural(rows: list[tuple[Any, ...]], column: int) -> int:
        return max(cell_len(row[column]) for row in rows)

    def first_items(rows: list[tuple[Any, ...]], column: int) -> int:
        """The least width showing every row's first item whole (and `…` after it if more follow)."""
        return max([cell_len(_LIST_HEADER[column])] + [
            cell_len(fit_items(row[column].items[:1], 10**6, len(row[column].items) > 1))
            for row in rows[1:] if row[column].items])

    rows = table("%Y-%m-%d %H:%M:%S")
    shown = [i for i in range(len(_LIST_HEADER))
             if i != _MACHINE or any((run.get("machine") or "local") != "local" for run in runs)]
    if sum(natural(rows, i) for i in shown) + 2 * (len(shown) - 1) > available:
        rows = table("%m-%d %H:%M")
    names, shorter_names = {_MACHINE: 7, _PROJECT: 12}, {_MACHINE: 5, _PROJECT: 6}
    values = ({_PARAMS: first_items(rows, _PARAMS)}, {_METRICS: first_items(rows, _METRICS)})
    # A table too wide gives way until it fits: the names narrow, then params and then metrics down to their
    # first items (the param that differs, the lead metric), then the start time goes, then the names narrow
    # further. Params and metrics are never cut to a bare `…`: when even that is too wide, params go.
    giving_way = [((), (names, *values)), ((_STARTED,), (names, *values)),
                  ((_STARTED,), (names, *values, shorter_names)),
                  ((_STARTED, _PARAMS), (names, *values, shorter_names))]

    def layout(dropped: tuple[int, ...], steps: tuple[dict[int, int], ...]) -> dict[int, int]:
        """Natural widths less the `dropped` columns, narrowed step by step (each step: the widest of its
        columns a cell at a time, none below its floor) until the table fits."""
        widths = {i: natural(rows, i) for i in shown if i not in dropped}
        for step in steps:
            least = {i: n for i, n in step.items() if i in widths}
            while (sum(widths.values()) + 2 * (len(widths) - 1) > available
                   and (narrowable := [i for i, n in least.items() if widths[i] > n])):
                widths[max(narrowable, key=lambda i: (widths[i], i))] -= 1
        return widths

    for dropped, steps in giving_way:
        widths = layout(dropped, steps)
        if sum(widths.values()) + 2 * (len(widths) - 1) <= available:
            break

    def fitted(text: str, width: int) -> str:
        text = fit_items(text.items, width, text.more) if isinstance(text, Pairs) else elide(text, width)
        return text + " " * (width - cell_len(text))

    def spare() -> int:
        return max(0, available - sum(widths.values()) - 2 * (len(widths) - 1))

    def used(column: int, width: int) -> int:
        return max(cell_len(fitted(row[column], width).rstrip()) for row in rows)

    # Whole items leave a narrowed params or metrics column partly empty: that room goes to metrics, then
    # params, then the names.
    for i in (_PARAMS, _METRICS):
        if i in widths:
            widths[i] = used(i, widths[i])
    for i in (_METRICS, _PARAMS):
        if i in widths:
            widths[i] = used(i, widths[i] + spare())
    for i in (_PROJECT, _MACHINE):
        if i in widths:
            widths[i] += min(natural(rows, i) - widths[i], spare())

    return ["  ".join(fitted(row[i], width) for i, width in widths.items()).rstrip() for row in rows]


def cmd_runs_show(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    run = wb.show(args.run)
    handle = run.pop("handle", None) or {}
    if handle.get("job"):
        run["slurm_job"] = handle["job"]  # a Slurm run: its job id on the cluster
    run["image_size"] = run_image_size(wb.store, run)  # bytes, from the run's records (no engine needed)
    if args.json:
        run.pop("seq", None)
        run["duration"] = _duration(run)
        _emit_json(run)
        return 0
    print(f"run {run['id']}  {run['status']}" + (f"  ({printable(run['status_reason'])})" if run.get("status_reason") else ""))
    fields = [
        ("project", f"{run['project']}  ({run['project_path']})"), ("experiment", run["experiment"]),
        ("machine", f"{run['machine']}  executor={run['executor']}"
                    + (f"  slurm job {run['slurm_job']}" if run.get("slurm_job") else "")),
        ("created", _ago(run["created_at"])), ("started", _ago(run["started_at"])),
        ("finished", _ago(run["finished_at"])), ("duration", _fmt_duration(_duration(run))),
        ("exit code", run["exit_code"]), ("params", json.dumps(run["params"])),
        ("argv", json.dumps(run["argv"])), ("env", json.dumps(run["env"])),
        ("image", f"{run.get('image') or '-'}  {run.get('image_id') or ''}"
                  + (f"  ({human_bytes(run['image_size'])}, {run['image_size']:,} bytes)" if run["image_size"] is not None else "")),
        ("snapshot", run.get("snapshot")),
        ("git", f"{run.get('git_commit') or '-'}" + (
            "  (dirty: diff recorded)" if run.get("git_dirty")
            else "  (state " + next((e["message"][len("git state "):] for e in run["events"]
                                     if e["message"].startswith("git state unknown: ")), "unknown") + ")"
            if run.get("git_commit") and run.get("git_dirty") is None else "")
            + "".join(f"  ({e['message'].split(':')[0]})" for e in run["events"] if e["kind"] == "git")),
        ("placed", _placement_text(run.get("placement"))),
        ("gpus", ", ".join(run.get("gpu_uuids") or []) or "none"),
        ("rerun of", run.get("rerun_of")), ("run dir", run["run_dir"]), ("files on", run.get("host_run_dir")),
    ]
    for name, value in fields:
        if value not in (None, ""):
            print(f"  {name:<11}{printable(str(value))}")
    if run["metrics"]:
        print("metrics")
        for name, d in run["metrics"].items():
            print(f"  {printable(name):<16} last={_fmt_value(d['last'])}  min={_fmt_value(d['min'])}  "
                  f"max={_fmt_value(d['max'])}  points={d['points']}")
    if run["bad_metric_lines"] or run["bad_metric_values"]:
        print(f"  skipped: {run['bad_metric_lines']} line(s) that were not JSON objects, "
              f"{run['bad_metric_values']} non-numeric value(s)")
    if run["checks"]:
        print(f"checks: {run['verdict'].upper()}")
        for c in run["checks"]:
            value = "missing" if c["value"] is None else _fmt_value(c["value"])
            print(f"  {'pass' if c['passed'] else 'FAIL'}  {printable(c['expression']):<24} value={value}")
    if run["artifacts"]:
        print("artifacts")
        for a in run["artifacts"]:
            if a.get("link") is not None:
                print(f"  {printable(a['path']):<24} link to {printable(a['link'])} (not followed)")
            else:
                print(f"  {printable(a['path']):<24} {a['size']:>12,} bytes  sha256:{a['sha256'][:16]}")
    if run["events"]:
        print("events")
        width = max(len(e["kind"]) for e in run["events"])
        for e in run["events"]:
            print(f"  {_ago(e['ts'])}  {printable(e['kind']):<{width}}  {printable(e['message'])}")
    return 0


def _placement_text(placement: dict[str, Any] | None) -> str | None:
    """Where placement sent a run and why, and what was asked: "gpu-b: 2 of 4 GPUs free  (asked: auto, 2 GPUs)"."""
    if not placement:
        return None
    request = placement.get("request") or {}
    machines = request.get("machines")
    asked = [", ".join(machines) if isinstance(machines, list) else machines,
             f"{request['gpus']} GPU(s)" if request.get("gpus") is not None else None]
    asked_text = ", ".join(str(part) for part in asked if part)
    return (placement.get("reason") or placement.get("machine") or "-") + (f"  (asked: {asked_text})" if asked_text else "")


def cmd_runs_logs(wb: Any, args: argparse.Namespace) -> int:
    progress = ProgressLine() if args.follow else None
    sink = _log_printer(timestamps=args.timestamps, raw=args.raw, progress=progress)
    if not args.follow:
        wb.reconcile()
    for data in wb.logs(args.run, follow=args.follow, on_progress=progress.show if progress else None):
        sink(data)
    if progress is not None:
        progress.show("")  # the run has ended: its last state is in the log above
    return 0


def cmd_runs_cancel(wb: Any, args: argparse.Namespace) -> int:
    before = wb.store.get_run(args.run)["status"]
    run = wb.cancel(args.run)
    if args.json:
        _emit_json(run_json(run))
    elif before not in ("queued", "running"):
        _say(f"run {run['id']} already {run['status']}; nothing to cancel")
    else:
        _say(_verdict(run))
    return 0


def cmd_runs_pull(wb: Any, args: argparse.Namespace) -> int:
    copied = wb.pull(args.run, args.paths)
    run_dir = wb.dirs.run_dir(wb.store.get_run(args.run)["id"]) / "out"
    if args.json:
        _emit_json({"dir": str(run_dir), "files": [{"path": p, "bytes": n} for p, n in copied]})
        return 0
    fetched = sum(1 for _, n in copied if n)
    _say(f"{len(copied)} file(s) in {run_dir}: {fetched} copied ({sum(n for _, n in copied):,} bytes), "
         f"{len(copied) - fetched} already there")
    return 0


def cmd_runs_rm(wb: Any, args: argparse.Namespace) -> int:
    removed = [wb.remove(ref, force=args.force) for ref in args.runs]
    if args.json:
        _emit_json({"removed": removed})
    else:
        for run_id in removed:
            _say(f"removed run {run_id}")
    return 0


def cmd_gc(wb: Any, args: argparse.Namespace) -> int:
    result = wb.gc()
    if args.json:
        _emit_json(result)
    else:
        _say(f"removed {result['snapshots_removed']} snapshot(s), {result['run_dirs_removed']} orphaned run "
             f"dir(s) and {result['images_removed']} image(s) no run needs; "
             f"freed {result['bytes_freed'] / 2**20:.1f} MiB")
        if result.get("image_disk_bytes") is not None:
            _say(f"Workbench's images now take {human_bytes(result['image_disk_bytes'])} on disk "
                 f"({result['images_left']} image(s), shared base layers counted once)")
        for name, freed in (result.get("hosts") or {}).items():
            _say(f"{name}: removed {freed['snapshots_removed']} snapshot(s) ({freed['objects_removed']} file(s) no "
                 f"snapshot uses), {freed['run_dirs_removed']} run dir(s) and {freed['containers_removed']} "
                 "container(s) no run needs")
        for note in result["notes"]:
            _say(f"note: {note}")
    return 0


def cmd_projects_add(wb: Any, args: argparse.Namespace) -> int:
    spec = wb.add_project(args.path)
    if args.json:
        _emit_json({"name": spec.name, "path": str(spec.root), "experiments": sorted(spec.experiments)})
    else:
        _say(f"added project {spec.name} ({spec.root}): experiments {', '.join(spec.experiments)}")
    return 0


def cmd_projects_list(wb: Any, args: argparse.Namespace) -> int:
    projects = wb.projects()
    if args.json:
        _emit_json(projects)
        return 0
    if not projects:
        _say("no projects yet: add one with `workbench projects add PATH`")
    for p in projects:
        state = p["error"] or ("experiments: " + ", ".join(p["experiments"]))
        cost = f"  ${p['cost']:.2f} spent" if p.get("cost") is not None else ""
        print(printable(f"{p['name']:<20} {p['path']}  {state}{cost}"))
    return 0


def cmd_projects_remove(wb: Any, args: argparse.Namespace) -> int:
    wb.remove_project(args.project)
    if not args.json:
        _say(f"removed project {args.project} (its runs stay in the history)")
    else:
        _emit_json({"removed": args.project})
    return 0


def cmd_machines_list(wb: Any, args: argparse.Namespace) -> int:
    machines = wb.list_machines()
    if args.json:
        _emit_json(machines)
        return 0
    for m in machines:
        cost = f"  ${m['hourly_cost']:.2f}/h" if m.get("hourly_cost") is not None else ""
        print(printable(f"{m['name']:<16} {m['kind']:<6} {m['address']}{cost}"))
    return 0


def cmd_machines_add(wb: Any, args: argparse.Namespace) -> int:
    slurm = None
    if args.slurm:
        slurm = {"login": args.slurm, "partition": args.partition, "account": args.account, "time": args.time,
                 "setup": args.setup, "poll": args.poll}
    elif any(v is not None for v in (args.partition, args.account, args.time, args.setup, args.poll)):
        raise WorkbenchError("--partition, --account, --time, --setup and --poll are for a Slurm machine",
                             hint="add it with --slurm LOGIN_HOST")
    result = wb.add_machine(args.name, ssh=args.ssh, identity=args.identity, hourly_cost=args.hourly_cost,
                            jump=args.jump, workdir=args.dir, slurm=slurm)
    if args.json:
        _emit_json(result)
        return 0
    _say(f"added machine {result['name']} ({result['address']})")
    if result["state"] == "host key unknown":
        _say(f"  its host key is not known yet: {result['key_type']} {result['fingerprint']}")
        _say(f"  check it, then: workbench machines trust {result['name']}")
    elif result["state"] != "host key known":
        _say(f"  not connected: {result.get('error', result['state'])}")
    return 0


def cmd_machines_remove(wb: Any, args: argparse.Namespace) -> int:
    wb.remove_machine(args.name)
    if args.json:
        _emit_json({"removed": args.name})
    else:
        _say(f"removed machine {args.name}")
    return 0


def _confirm(question: str) -> bool:
    _say(question)
    try:
        return input("type yes to trust it: ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_machines_trust(wb: Any, args: argparse.Namespace) -> int:
    from workbench.services.machines import HostKeyNotTrusted

    try:
        result = wb.trust_machine(args.name, fingerprint=args.fingerprint,
                                  confirm=_confirm if sys.stdin.isatty() else None)
    except HostKeyNotTrusted as refused:
        if not sys.stdin.isatty():  # nobody could be asked: what to compare, and how to accept it without one
            _say(f"{refused.name} presents {refused.key_type} {refused.fingerprint}; no terminal to confirm on: "
                 f"compare it with the host's own (`ssh-keygen -lf` of its key there), then trust it with "
                 f"`workbench machines trust {refused.name} --fingerprint {refused.fingerprint}`")
        raise
    if args.json:
        _emit_json(result)
    elif result["already"]:
        _say(f"{args.name}: {result['key_type']} {result['fingerprint']} is already trusted")
    else:
        _say(f"{args.name}: trusted {result['key_type']} {result['fingerprint']}")
    return 0


def cmd_machines_stats(wb: Any, args: argparse.Namespace) -> int:
    stats = wb.machine_stats(args.name)
    if args.json:
        _emit_json(stats)
        return 0
    load = " ".join(f"{x:.2f}" for x in stats["load"]) if stats.get("load") else "n/a"
    memory = (f"{stats['memory_used'] / 2**30:.1f} / {stats['memory_total'] / 2**30:.1f} GiB"
              if stats.get("memory_total") else "n/a")
    print(f"{stats['name']}: {stats.get('cpus') or 'n/a'} CPUs, load {load}, memory {memory}")
    for gpu in stats["gpus"]:
        def show(value: Any, unit: str = "") -> str:
            return "n/a" if value is None else f"{value:g}{unit}"
        mem_used = gpu.get("memory_used")
        mem_total = gpu.get("memory_total")
        mem = "n/a" if mem_used is None or mem_total is None else f"{mem_used / 2**20:.0f}/{mem_total / 2**20:.0f} MiB"
        print(f"  GPU{gpu['index']} {printable(str(gpu['name']))}  util {show(gpu.get('utilization'), '%')}  mem {mem}  "
              f"temp {show(gpu.get('temperature'), 'C')}  power {show(gpu.get('power'), 'W')}"
              f"/{show(gpu.get('power_limit'), 'W')}")
    if not stats["gpus"]:
        print(f"  no GPUs ({stats.get('gpu_error') or 'none found'})")
    if "docker" in stats:
        runtime = {True: "with the NVIDIA runtime", False: "without a GPU runtime", None: ""}[stats.get("gpu_runtime")]
        print(f"  docker: {stats['docker'] or 'none'} {runtime}".rstrip())
    return 0


def cmd_doctor(wb: Any, args: argparse.Namespace) -> int:
    checks = wb.doctor(args.machine)
    if args.json:
        _emit_json(checks)
    else:
        marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        for c in checks:
            print(f"[{marks[c['status']]}] {c['check']:<17} {c['detail']}")
            if c["fix"]:
                print(f"       {'':<17} fix: {c['fix']}")
    essential = ("data dir", "database") if args.machine in (None, "local") else ("ssh", "workbench dir")
    return 1 if any(c["status"] == "fail" for c in checks if c["check"] in essential) else 0


def cmd_watch(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    session = wb.watch(args.path, lambda line: print(printable(line), flush=True), polling=args.polling)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        session.stop()
        running = f"; run {session.current} keeps going" if session.current else ""
        print(f"stopped watching ({len(session.runs)} run(s) recorded{running})", flush=True)
        return 0


def cmd_dispatch(wb: Any, args: argparse.Namespace) -> int:
    wb.dispatch()
    return 0


def cmd_queue(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    waiting = wb.queue()
    if args.json:
        _emit_json([{**run_json(run), "priority": run.get("priority", 0), "waiting": run.get("waiting")}
                    for run in waiting])
        return 0
    if not waiting:
        print("the queue is empty")
        return 0
    import textwrap

    from workbench.tui.formatting import elide

    now = time.time()
    rows = [("ID", "PRI", "GPUS", "PROJECT/EXPERIMENT", "WAITING", "REASON")]
    for run in waiting:
        rows.append((run["id"], str(run.get("priority", 0)), str((run.get("waiting") or {}).get("gpus", 0)),
                     elide(printable(f"{run['project']}/{run['experiment']}"), _QUEUE_NAME_WIDTH),
                     _fmt_duration(now - run["created_at"]), printable(run.get("status_reason") or "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    indent = sum(widths) + 2 * len(widths)
    rest = max(20, shutil.get_terminal_size().columns - indent)
    for row in rows:  # the reason whole, wrapped by words under its column
        reason = textwrap.wrap(row[-1], rest, break_long_words=False, break_on_hyphens=False) or [""]
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + reason[0])
        for line in reason[1:]:
            print(" " * indent + line)
    return 0


_QUEUE_NAME_WIDTH = 24  # PROJECT/EXPERIMENT in `queue`: longer names end in `…`, leaving the reason room


def cmd_sweep(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile(wait=0)
    sweep = wb.sweep(args.path, args.experiment, args.param, machine=args.machine, executor=args.executor,
                     priority=args.priority)
    if args.json:
        _emit_json(_sweep_json(wb.sweep_summary(sweep["id"])))
    else:
        print(sweep["id"])
        _say(f"sweep {sweep['id']} started: `workbench sweeps show {sweep['id']}` follows it; it goes on without "
             "this command")
    return 0


def _sweep_json(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "project", "experiment", "method", "status", "status_reason", "created_at", "finished_at",
            "space", "options", "progress", "best", "cost", "trials")
    return {k: summary.get(k) for k in keys}


def cmd_sweeps_list(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    listed = wb.sweeps()
    if args.json:
        _emit_json([{k: v for k, v in _sweep_json(s).items() if k != "trials"} for s in listed])
        return 0
    if not listed:
        _say("no sweeps yet: start one with `workbench sweep PATH`")
        return 0
    from workbench.cli_output import columns

    costs = any(s.get("cost") for s in listed)
    rows = [("ID", "STATUS", "PROJECT/EXPERIMENT", "METHOD", "TRIALS", "PROGRESS", "BEST") + (("COST",) if costs else ())]
    for s in listed:
        progress = ", ".join(f"{n} {status}" for status, n in sorted(s["progress"].items()))
        rows.append((s["id"], s["status"], printable(f"{s['project']}/{s['experiment']}"), s["method"],
                     str(s["options"]["trials"]), progress or "none yet", s["best"] or "-")
                    + ((f"${s['cost']:.2f}" if s.get("cost") else "-",) if costs else ()))
    for line in columns(rows):
        print(line)
    return 0


def cmd_sweeps_show(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    summary = wb.sweep_summary(args.sweep)
    if args.json:
        _emit_json(_sweep_json(summary))
        return 0
    options = summary["options"]
    objective = options.get("objective")
    print(f"sweep {summary['id']}  {summary['status']}  {printable(summary['project'])}/"
          f"{printable(summary['experiment'])}  {summary['method']}, {options['trials']} trials, at most "
          f"{options['max_parallel']} at once" + (f", {options['direction']} {objective}" if objective else ""))
    if summary.get("status_reason"):
        print(f"  {printable(summary['status_reason'])}")
    if summary.get("cost") is not None:
        print(f"  cost so far ${summary['cost']:.2f}" + (f" of a ${options['budget']:.2f} budget" if options.get("budget") else ""))
    names = list(summary["space"])
    header = ["TRIAL", "RUN", "STATUS", *(n.upper() for n in names), (objective or "objective").upper()]
    rows = [header] + [[str(t["trial"] + 1), t["id"], t["status"], *(_param_text(t["params"].get(n)) for n in names),
                        "-" if t["objective"] is None else f"{t['objective']:.6g}"] for t in summary["trials"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(printable(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    if objective:
        from workbench.textplot import param_scatter
        for name in names:
            chart = param_scatter(summary["trials"], name, objective, width=min(60, shutil.get_terminal_size().columns - 12))
            if chart:
                print()
                print("\n".join(chart))
    return 0


def _param_text(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_sweeps_cancel(wb: Any, args: argparse.Namespace) -> int:
    sweep = wb.cancel_sweep(args.sweep)
    if args.json:
        _emit_json(_sweep_json(wb.sweep_summary(sweep["id"])))
    else:
        _say(f"sweep {sweep['id']} {sweep['status']}")
    return 0


def cmd_runs_compare(wb: Any, args: argparse.Namespace) -> int:
    wb.reconcile()
    compared = wb.compare(args.runs)
    if args.json:
        for metric in compared["metrics"].values():
            for run in metric["runs"]:
                run.pop("series", None)
        _emit_json(compared)
        return 0
    from workbench.textplot import overlay

    runs = compared["runs"]
    ids = [r["id"] for r in runs]
    rows = [["", *ids], ["run", *(f"{r['project']}/{r['experiment']}" for r in runs)],
            ["status", *(r["status"] for r in runs)], ["checks", *(r["verdict"] or "-" for r in runs)]]
    rows += [[name, *(_param_text(v) for v in values)] for name, values in compared["params_differ"].items()]
    from workbench.services.compare import last_and_best

    for name, metric in compared["metrics"].items():
        way = "lowest" if metric["lower_is_better"] else "highest"
        last, best = last_and_best(metric)
        rows.append([f"{name} last", *last])
        rows.append([f"{name} {way}", *(text + (" *" if r["id"] == metric["best_run"] else "")
                                        for text, r in zip(best, metric["runs"]))])
    widths = [max(len(printable(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(printable(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    if compared["params_same"]:
        print("same in all: " + printable(", ".join(f"{k}={_param_text(v)}" for k, v in compared["params_same"].items())))
    print("* the best run of each metric")
    width = min(72, shutil.get_terminal_size().columns - 12)
    for name, metric in compared["metrics"].items():
        chart = overlay(name, [(r["id"], r["series"]) for r in metric["runs"]], width=width)
        if chart:
            print()
            print("\n".join(printable(line) for line in chart))
    return 0


def cmd_follow(wb: Any, args: argparse.Namespace) -> int:
    wb.follow(args.run)
    return 0


def cmd_watch_deployments(wb: Any, args: argparse.Namespace) -> int:
    wb.watch_deployments()
    return 0


def cmd_tui(wb: Any, args: argparse.Namespace) -> int:
    from workbench.tui.app import run_app
    return run_app(wb)


# parser -------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Local-first ML experiment workstation.")
    parser.add_argument("--version", action="version", version=f"workbench {__import__('workbench').__version__}")
    parser.set_defaults(func=cmd_tui, json=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(subparsers: Any, name: str, func: Any, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        return p

    p = command(sub, "doctor", cmd_doctor, "check the engine, GPU runtime, NVML, data dir and disk (or an SSH host's)")
    p.add_argument("machine", nargs="?", help="an SSH machine to check: SSH, Docker, GPU runtime, GPUs, its "
                                              "Workbench dir and disk")

    p = command(sub, "run", cmd_run, "launch an experiment of a project folder")
    p.add_argument("path", help="project folder (holds workbench.toml)")
    p.add_argument("-e", "--experiment", help="experiment name (optional when the spec declares one)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override a param")
    p.add_argument("--machine", help="machine to run on: local, an SSH machine's name (see `machines list`), "
                                     "or auto: the cheapest free one, else the queue (default: the "
                                     "experiment's machine/machines, else local)")
    p.add_argument("--executor", choices=("docker", "process", "slurm"),
                   help="default: docker if an engine answers (slurm on a Slurm machine)")
    p.add_argument("--priority", type=int, default=0, help="queue order: higher first, then first come (default 0)")
    p.add_argument("--wait", action="store_true", help="follow the run's logs until it ends")

    command(sub, "queue", cmd_queue, "the runs waiting for a machine, in the order they will start")

    p = command(sub, "sweep", cmd_sweep, "run an experiment's [experiments.X.sweep] as trials through the queue")
    p.add_argument("path", help="project folder (holds workbench.toml)")
    p.add_argument("-e", "--experiment", help="experiment name (optional when the spec declares one)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="set a param not swept")
    p.add_argument("--machine", help="where trials run: a machine or auto (default: the experiment's, else auto)")
    p.add_argument("--executor", choices=("docker", "process"))
    p.add_argument("--priority", type=int, default=0)
    sweeps = sub.add_parser("sweeps", help="sweeps and their trials").add_subparsers(
        dest="sweeps_command", metavar="ACTION", required=True)
    command(sweeps, "list", cmd_sweeps_list, "list sweeps, newest first")
    p = command(sweeps, "show", cmd_sweeps_show, "a sweep's trials, best first, and how each param relates to the objective")
    p.add_argument("sweep", help="sweep id or unique prefix")
    p = command(sweeps, "cancel", cmd_sweeps_cancel, "stop a sweep: its queued trials leave the queue, running ones stop")
    p.add_argument("sweep")

    from workbench.cli_registry import add_commands
    add_commands(sub, command)

    runs = sub.add_parser("runs", help="the run history").add_subparsers(dest="runs_command", metavar="ACTION",
                                                                         required=True)
    p = command(runs, "list", cmd_runs_list, "list runs, newest first")
    p.add_argument("--status", choices=RUN_STATUSES)
    p.add_argument("--project")
    p.add_argument("--experiment")
    p.add_argument("--limit", type=int, default=100, help="rows to show (0 = all; default 100)")
    p = command(runs, "show", cmd_runs_show, "everything recorded about a run")
    p.add_argument("run", help="run id or unique prefix")
    p = command(runs, "logs", cmd_runs_logs, "print a run's logs", json_flag=False)
    p.add_argument("run")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    p.add_argument("-t", "--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("--raw", action="store_true", help="print lines byte for byte (terminal escapes included)")
    p = command(runs, "cancel", cmd_runs_cancel, "stop a running run")
    p.add_argument("run")
    p = command(runs, "rerun", cmd_rerun, "start an identical run from the stored snapshot and image")
    p.add_argument("run")
    p.add_argument("--executor", choices=("docker", "process"))
    p.add_argument("--wait", action="store_true")
    p = command(runs, "compare", cmd_runs_compare, "runs side by side: differing params, metrics (best marked), checks, charts")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p = command(runs, "pull", cmd_runs_pull, "copy a remote run's output files here (all, or PATHs)")
    p.add_argument("run")
    p.add_argument("paths", nargs="*", metavar="PATH", help="output files or folders, relative to its output dir")
    p = command(runs, "rm", cmd_runs_rm, "delete runs, their metrics and their files")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--force", action="store_true", help="cancel a running run first")

    command(sub, "gc", cmd_gc, "reclaim snapshots and run dirs no run uses")

    projects = sub.add_parser("projects", help="registered project folders").add_subparsers(
        dest="projects_command", metavar="ACTION", required=True)
    command(projects, "list", cmd_projects_list, "list registered projects")
    p = command(projects, "add", cmd_projects_add, "register a project folder")
    p.add_argument("path")
    p = command(projects, "remove", cmd_projects_remove, "unregister a project (its runs stay)")
    p.add_argument("project", help="name or path")

    p = command(sub, "watch", cmd_watch, "re-run an experiment whenever the project's files change", json_flag=False)
    p.add_argument("path", help="project folder (its workbench.toml has a [watch] table)")
    p.add_argument("--polling", action="store_true", help="poll instead of inotify (network file systems)")

    machines = sub.add_parser("machines", help="this workstation and SSH hosts").add_subparsers(
        dest="machines_command", metavar="ACTION", required=True)
    command(machines, "list", cmd_machines_list, "list machines")
    p = command(machines, "add", cmd_machines_add, "add an SSH host (its host key is shown, not trusted)")
    p.add_argument("name", help="a name for it (or a Host alias of ~/.ssh/config)")
    p.add_argument("--ssh", metavar="[USER@]HOST[:PORT]", help="where it is (default: NAME's ~/.ssh/config entry)")
    p.add_argument("--identity", metavar="FILE", help="private key file (default: ssh-agent, then ~/.ssh/id_*)")
    p.add_argument("--jump", metavar="[USER@]HOST[:PORT]", help="reach it through this host (ProxyJump)")
    p.add_argument("--hourly-cost", type=float, metavar="X", help="what an hour of it costs, for the fleet view")
    p.add_argument("--dir", metavar="PATH", help="Workbench's dir on the host (snapshots, runs; default ~/.workbench)"
                                                 "; for a Slurm cluster, on its shared file system")
    p.add_argument("--slurm", metavar="[USER@]LOGIN_HOST[:PORT]", help="a Slurm cluster reached through this login "
                                                                      "host: runs there are Slurm jobs")
    p.add_argument("--partition", help="Slurm: the partition jobs go to (default: the cluster's)")
    p.add_argument("--account", help="Slurm: the account jobs are charged to")
    p.add_argument("--time", help="Slurm: each job's time limit (e.g. 04:00:00)")
    p.add_argument("--setup", metavar="LINE", help="Slurm: a shell line run before each experiment "
                                                   "(e.g. 'module load cuda; source ~/venv/bin/activate')")
    p.add_argument("--poll", type=float, metavar="SECONDS", help="Slurm: seconds between squeue calls (default 30)")
    p = command(machines, "remove", cmd_machines_remove, "forget an SSH host")
    p.add_argument("name")
    p = command(machines, "trust", cmd_machines_trust, "trust the host key an SSH host presents (shown first)")
    p.add_argument("name")
    p.add_argument("--fingerprint", metavar="SHA256:...", help="for scripts: trust only a key with this fingerprint")
    p = command(machines, "stats", cmd_machines_stats, "one telemetry sample of a machine")
    p.add_argument("name")

    p = sub.add_parser("_dispatch")  # internal: the detached dispatcher of the queue
    p.set_defaults(func=cmd_dispatch)
    p = sub.add_parser("_follow")  # internal: the detached background follower of one run
    p.add_argument("run")
    p.set_defaults(func=cmd_follow)
    p = sub.add_parser("_watch_deployments")  # internal: the detached deployment watcher (health, traffic, canaries)
    p.set_defaults(func=cmd_watch_deployments)
    return parser


def _data_dir() -> Any:
    try:
        from workbench.dirs import resolve_dirs
        return resolve_dirs().data
    except Exception:  # noqa: BLE001
        return None


def _say_progress(message: str) -> None:
    """Workbench's progress lines. What the engine printed (a build's output) keeps its colours on a
    terminal and loses them elsewhere: never escape text such as `\x1b[91m`."""
    from workbench.execution.images import EngineOutput

    if not isinstance(message, EngineOutput):
        _say(message)
        return
    from workbench.textsafe import coloured_text, log_text

    print(coloured_text(message) if sys.stderr.isatty() else log_text(message), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    wb = None
    try:
        from workbench.services import Workbench

        wb = Workbench(progress=_say_progress)
        return args.func(wb, args)
    except WorkbenchError as exc:
        _say(f"workbench: error: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("workbench: interrupted (runs keep going; see `workbench runs list`)")
        return 130
    except BrokenPipeError:  # `workbench runs list | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback, unless asked for
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        from workbench.failures import explain

        message = explain(exc, wb.dirs.data if wb is not None else _data_dir())
        if message:
            _say(f"workbench: error: {message}")
            return 1
        _say(f"workbench: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
             f"(set WORKBENCH_DEBUG=1 for the traceback)")
        return 1
    finally:
        if wb is not None:
            try:
                wb.close()
            except Exception:  # noqa: BLE001
                pass
