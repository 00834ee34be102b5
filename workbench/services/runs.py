"""Runs once launched: followed to their end (here or by a detached follower), their logs and the line they
are redrawing, cancelled, removed, and read for the CLI and the TUI's screens."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Callable, Iterator

from workbench.errors import EngineUnavailable, NotFound, WorkbenchError
from workbench.execution.base import CancelsMany, Handle, inside_out, out_dir
from workbench.execution.ingest import PROGRESS_FILE
from workbench.failures import is_engine_failure
from workbench.services.context import Services, first_line, start_detached
from workbench.services.dispatch_trigger import ensure_dispatcher
from workbench.services.launch import LAUNCH_LEASE_TTL
from workbench.services.session_files import bring_back, bring_back_held, bringing_back, brought_back, work_copy
from workbench.services.reconcile import (UNREACHABLE, adopt, ingestor, lease_held, mark_reachable,
                                          mark_unreachable)
from workbench.store.leases import LeaseLost, lease_name, lease_ttl, new_owner
from workbench.store.cost import run_cost

ENGINE_RETRY_MAX = 5.0
GIVE_WAY_AFTER = 20.0  # a background follower that finds the run followed by another process this long exits


def wait(wb: Services, ref: str, sink: Callable[[bytes], None] | None = None,
         progress: Callable[[str], None] | None = None, give_way_after: float | None = None) -> dict[str, Any]:
    """Follows a run to its end, ingesting live (taking over from a background follower if needed);
    keeps following through an engine restart, and through a host that stops answering: meanwhile the run
    is marked unreachable and its lease stays ours (renewed on every retry), so nobody else waits on that
    host for it. With `give_way_after` (a background follower), returns once another live process has held
    the run's ingestion that long: it has a follower already."""
    run = wb.store.get_run(ref)
    machine = run.get("machine") or "local"
    what = "the Docker engine" if machine == "local" else machine
    delay, engine_lost = 0.5, False
    ensured_at = time.monotonic()
    owner = new_owner()  # one for the whole wait: the lease is kept across reconnects
    others_since: float | None = None
    while run["status"] in ("queued", "running"):
        if run.get("waiting") is not None or (run["status"] == "queued" and not run.get("handle")
                                              and lease_held(wb.store, run["id"])):
            time.sleep(0.2)  # in the queue, or being launched: the dispatcher (or launcher) starts it
            run = wb.store.get_run(run["id"])
            if run.get("waiting") is not None and time.monotonic() >= ensured_at + 5:
                ensure_dispatcher(wb)  # one killed meanwhile: another takes the queue on
                ensured_at = time.monotonic()
            machine = run.get("machine") or "local"
            what = "the Docker engine" if machine == "local" else machine
            continue
        try:
            following = ingestor(wb, run, owner)  # a Docker engine is asked here; a host's processes are not
            if engine_lost:
                if run.get("handle"):
                    following.executor.status(Handle.from_record(run["handle"]))  # answers once it did answer
                wb.progress(f"{what} answers again; following run {run['id']}")
                delay, engine_lost = 0.5, False
                if machine != "local":
                    mark_reachable(wb, machine, [run])
            lease_held(wb.store, run["id"])  # frees the lease of a holder that was killed: taken over now
            if run.get("handle") and following.acquire():
                others_since = None
                try:
                    following.follow(sink=sink, progress=progress)
                except LeaseLost:
                    pass  # another process took over; keep waiting for its verdict
                except Exception as exc:
                    if machine != "local" and _host_gone(exc):  # said now; its streams are let go after
                        mark_unreachable(wb, machine, [run], exc)
                    raise
                finally:
                    following.release()
            else:
                others_since = others_since or time.monotonic()
                if give_way_after is not None and time.monotonic() - others_since >= give_way_after:
                    return run  # another process follows it
                time.sleep(0.2)  # another process is ingesting it; wait for its verdict
        except Exception as exc:  # noqa: BLE001 - only an engine or host that stopped answering is waited out
            if not (is_engine_failure(exc) or _host_gone(exc)):
                raise
            if not engine_lost:
                wb.progress(f"{what} stopped answering ({first_line(exc)}); waiting for it to "
                            "come back (Ctrl-C stops waiting; the run is left as it is)")
            engine_lost = True
            if machine != "local":
                # the run lives on: shown as unreachable meanwhile, and still ours (no one else asks the host)
                if run.get("handle"):
                    wb.store.acquire_lease(lease_name(run["id"]), owner, lease_ttl())
                mark_unreachable(wb, machine, [run], exc)
            wb.executors.forget_machine(machine)
            time.sleep(delay)
            delay = min(delay * 2, ENGINE_RETRY_MAX)
        run = wb.store.get_run(run["id"])
    wb.store.release_lease(lease_name(run["id"]), owner)  # kept through an outage that lasted to the end
    if run.get("kind") == "session":
        _bring_back_ended(wb, run)
    return run


def _bring_back_ended(wb: Services, run: dict[str, Any]) -> None:
    """An ended session's changed files, brought back by whoever saw it end (once: session_files.py); a
    failure is kept with the run (`sessions stop` tries again)."""
    try:
        bring_back(wb, run)  # what it did is the run's event
    except WorkbenchError as exc:
        wb.store.add_event(run["id"], "warning", f"its files are not brought back yet: {exc.message}")


def follow_in_background(wb: Services, run_id: str) -> None:
    """A detached process that ingests the run until it ends, so history fills in without the CLI."""
    wb.dirs.run_dir(run_id).mkdir(parents=True, exist_ok=True)  # its stderr file (a queued run has no dir yet)
    start_detached(wb, ["_follow", run_id], wb.dirs.run_dir(run_id) / "follower.err")


def logs(wb: Services, ref: str, follow: bool = False, poll: float = 0.2,
         on_progress: Callable[[str], None] | None = None) -> Iterator[bytes]:
    """Stored log lines; with `follow`, new lines as they are ingested, until the run ends, and the line
    the run is redrawing (its progress bar) handed to `on_progress` whenever it changes ("" when gone)."""
    run = wb.store.get_run(ref)
    path = wb.dirs.run_dir(run["id"]) / "logs.txt"
    position = 0
    shown = ""
    retry_at = 0.0
    silent = False  # said that the run's host does not answer (and not yet that it answers again)
    while True:
        if follow:
            silent = _say_reachability(wb, run, silent)
        if follow and run["status"] in ("queued", "running") and time.monotonic() >= retry_at:
            try:
                # only a catch-up made here says the host answers (its follower, holding the run, says so itself)
                if ingest_if_unowned(wb, run) and (run.get("status_reason") or "").startswith(UNREACHABLE):
                    mark_reachable(wb, run["machine"], [run])
            except WorkbenchError as exc:
                if not _host_gone(exc):
                    raise
                mark_unreachable(wb, run["machine"], [run], exc)  # said by the run's record; asked again soon
                retry_at = time.monotonic() + 5.0
        try:
            with open(path, "rb") as fh:
                fh.seek(position)
                data = fh.read()
        except FileNotFoundError:
            data = b""
        cut = data.rfind(b"\n") + 1
        if cut:
            position += cut
            yield data[:cut]
        if not follow:
            return
        run = wb.store.get_run(run["id"])
        if on_progress is not None:
            line = progress_line(wb, run["id"]) or ""
            if line != shown:
                shown = line
                on_progress(line)
        if run["status"] not in ("queued", "running") and not cut:
            return
        if not cut:
            time.sleep(poll)


def _say_reachability(wb: Services, run: dict[str, Any], silent: bool) -> bool:
    """While a run is followed: one line when its host stops answering (as whoever follows it recorded), and
    one when it answers again. Returns whether the host is silent now."""
    reason = run.get("status_reason") or ""
    now = reason.startswith(UNREACHABLE) and run["status"] in ("queued", "running")
    if now and not silent:
        wb.progress(f"{run.get('machine')} does not answer ({reason}); waiting for it to come back: the run goes "
                    "on there, its output follows when it answers (Ctrl-C stops following)")
    elif silent and not now:
        wb.progress(f"{run.get('machine')} answers again; following run {run['id']}")
    return now


def progress_line(wb: Services, ref: str) -> str | None:
    """The line a live run is redrawing right now (a tqdm bar: text after the last newline, as a terminal
    shows it), kept by whoever follows the run; None when there is none. Never stored in the history."""
    run = wb.store.get_run(ref)
    if run["status"] not in ("queued", "running"):
        return None
    try:
        text = (wb.dirs.run_dir(run["id"]) / PROGRESS_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text or None


def ingest_if_unowned(wb: Services, run: dict[str, Any]) -> bool:
    """Catches the run up here unless someone else ingests it; whether this did (and so reached its host)."""
    if not run.get("handle") or lease_held(wb.store, run["id"]):
        return False  # still being launched, or followed live by another process
    following = ingestor(wb, run)
    if not following.acquire():
        return False
    try:
        following.catch_up()
        return True
    except LeaseLost:
        return False
    finally:
        following.release()


def cancel(wb: Services, ref: str) -> dict[str, Any]:
    """Stops a run; one that already ended is reported as it is (not an error: it is stopped). A run
    still being launched is stopped by its launcher; one whose launcher died is adopted, then stopped."""
    return cancel_many(wb, [wb.store.get_run(ref)["id"]])[0]


def cancel_many(wb: Services, run_ids: list[str]) -> list[dict[str, Any]]:
    """Stops runs together (a sweep's trials): each is asked to stop, then all are waited for at once."""
    waiting_for: dict[str, bool] = {}  # run id -> asked its executor to stop
    for run_id in run_ids:
        run = wb.store.get_run(run_id)
        if run["status"] not in ("queued", "running"):
            continue
        wb.store.update_run(run_id, cancel_requested=1)
        if run.get("waiting") is not None:  # in the queue: leaves it (unless the dispatcher just took it)
            wb.store.cancel_waiting(run_id, "cancelled while queued")
            if wb.store.get_run(run_id)["status"] not in ("queued", "running"):
                continue
            run = wb.store.get_run(run_id)
        if not run.get("handle") and lease_held(wb.store, run_id):
            # still building or pulling: recorded now; its launcher stops whatever it starts
            wb.store.finish_run(run_id, "cancelled", exit_code=None, reason="cancelled while it was launched")
            continue
        waiting_for[run_id] = False
    deadline = time.monotonic() + LAUNCH_LEASE_TTL + 15
    while waiting_for and time.monotonic() < deadline:
        try:
            _stop_started(wb, [run_id for run_id, asked in waiting_for.items() if not asked], waiting_for)
        except WorkbenchError as exc:
            if _host_gone(exc):  # not stopped: the record must not say it was asked to (a later failure of
                for run_id, asked in waiting_for.items():  # the run would read as "cancelled by the user")
                    if not asked:
                        wb.store.update_run(run_id, cancel_requested=0)
            raise
        for run_id in list(waiting_for):
            run = wb.store.get_run(run_id)
            if run["status"] not in ("queued", "running"):
                del waiting_for[run_id]
            elif run.get("handle"):
                ingest_if_unowned(wb, run)
            elif not lease_held(wb.store, run_id):  # its launcher died
                if adopt(wb, run) is None:  # adopted: stopped on the next pass
                    wb.store.finish_run(run_id, "cancelled", exit_code=None, reason="cancelled before it started")
        if waiting_for:
            time.sleep(0.1)
    return [wb.store.get_run(run_id) for run_id in run_ids]


def _stop_started(wb: Services, run_ids: list[str], asked: dict[str, bool]) -> None:
    """Asks the executors of the started ones among `run_ids` to stop them: at once, per machine, where the
    executor can (one scancel for a sweep's array tasks), else one by one."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run_id in run_ids:
        run = wb.store.get_run(run_id)
        if run.get("handle") and run["status"] in ("queued", "running"):
            groups.setdefault((run.get("machine") or "local", run.get("executor") or ""), []).append(run)
    for runs in groups.values():
        executor = wb.executors.for_run(runs[0])
        handles = [Handle.from_record(run["handle"]) for run in runs]
        if len(runs) > 1 and isinstance(executor, CancelsMany):
            executor.cancel_many(handles)
        else:
            for handle in handles:
                executor.cancel(handle)
        for run in runs:
            asked[run["id"]] = True


def remove(wb: Services, ref: str, force: bool = False) -> str:
    run = wb.store.get_run(ref)
    if run["status"] in ("queued", "running"):
        if not force:
            raise WorkbenchError(f"run {run['id']} is {run['status']}", hint="cancel it first, or use --force")
        try:
            cancel(wb, run["id"])
        except WorkbenchError as exc:
            if not _host_gone(exc):
                raise
            wb.progress(f"{run['machine']} does not answer: run {run['id']} could not be stopped there "
                        "(`workbench gc` removes its container once the host answers)")
            wb.store.finish_run(run["id"], "cancelled", exit_code=None, reason="removed while its host did not answer")
    if run.get("kind") == "session" and run.get("handle"):
        _remove_session(wb, run["id"], force)
    else:
        _remove_run(wb, run)
    return run["id"]


def _remove_run(wb: Services, run: dict[str, Any]) -> None:
    if run.get("handle"):
        _remove_run_files(wb, run)
    wb.store.delete_run(run["id"])
    shutil.rmtree(wb.dirs.run_dir(run["id"]), ignore_errors=True)


FOLLOWER_FINISHING = 30.0  # seconds a stopped session's follower is given to finish its last ingestion


def _remove_session(wb: Services, run_id: str, force: bool) -> None:
    """An ended session goes with its working copy only once its files are brought back (or with --force,
    saying what is lost and where). Its follower finishes first, and the bring-back lease is held through
    the removal, so a follower bringing them back at the same time waits, then finds the run gone."""
    deadline = time.monotonic() + FOLLOWER_FINISHING
    while lease_held(wb.store, run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    with bringing_back(wb, run_id) as held:
        run = wb.store.get_run(run_id)
        problem = None
        try:
            if held:
                bring_back_held(wb, run)
            elif brought_back(wb, run_id) is None:
                problem = "another process is still bringing them back"
        except WorkbenchError as exc:
            problem = exc.message
        if problem is not None:
            where = work_copy(run)
            said = problem if where in problem else f"{problem}; its working copy is {where}"
            if not force:
                raise WorkbenchError(f"session {run_id}'s files are not brought back: {said}",
                                     hint="`workbench sessions stop` tries again; `runs rm --force` removes it "
                                          "and loses them")
            wb.progress(f"session {run_id} removed without its files brought back ({said}): "
                        f"what it changed there is lost")
        _remove_run(wb, run)


def _remove_run_files(wb: Services, run: dict[str, Any]) -> None:
    """The run's container (or process files) and, for a remote run, its dir on the host. A machine that was
    removed, an engine that is down or a host that does not answer leaves them, said once (gc frees them
    later where it still can); the record goes all the same."""
    machine = run.get("machine") or "local"
    handle = Handle.from_record(run["handle"])
    try:
        try:
            wb.executors.for_run(run).cleanup(handle)
        except EngineUnavailable:
            pass  # no engine: no container of the run's can be left running there
        if wb.executors.is_remote(machine):  # the run dir on the host (its snapshot stays for gc)
            wb.executors.host(machine).remove_tree(handle.run_dir)
    except NotFound:
        wb.progress(f"machine {machine!r} is no longer registered: run {run['id']}'s files there are left as they are")
    except WorkbenchError as exc:
        if not _host_gone(exc):
            raise
        wb.progress(f"{machine} does not answer: run {run['id']}'s files there are left as they are "
                    "(`workbench gc` removes them later)")


def refresh_run(wb: Services, ref: str) -> None:
    """Ingests what a live run has written, unless another process is already following it."""
    run = wb.store.get_run(ref)
    if run["status"] not in ("queued", "running"):
        return
    if (run.get("status_reason") or "").startswith(UNREACHABLE):
        return  # its host does not answer: the reconciler's own thread keeps asking, not every screen refresh
    try:
        ingest_if_unowned(wb, run)
    except EngineUnavailable:
        pass
    except WorkbenchError as exc:
        if not _host_gone(exc):
            raise
        mark_unreachable(wb, run["machine"], [run], exc)


def show_record(wb: Services, ref: str) -> dict[str, Any]:
    """The run with its artifacts and events (no metric scan: cheap enough to poll every second)."""
    run = wb.store.get_run(ref)
    run["artifacts"] = wb.store.artifacts(run["seq"])
    run["events"] = wb.store.events(run["id"])
    run["checks"] = wb.store.checks(run["seq"])
    run["cost"] = run_cost(run, time.time())
    handle = run.get("handle") or {}
    if (run.get("machine") or "local") != "local" and handle.get("run_dir"):
        run["host_run_dir"] = f"{run['machine']}:{handle['run_dir']}"  # where its files live
    return run


def show(wb: Services, ref: str) -> dict[str, Any]:
    """Everything recorded about a run; each metric summarised in SQL (never its whole history)."""
    run = show_record(wb, ref)
    run["metrics"] = {}
    for name in wb.store.metric_names(run["seq"]):
        stats = wb.store.metric_stats(run["seq"], name)
        run["metrics"][name] = {k: stats[k] for k in ("points", "last", "min", "max")}
    run["run_dir"] = str(wb.dirs.run_dir(run["id"]))
    return run


def dashboard(wb: Services) -> dict[str, Any]:
    """What the Dashboard shows, in one round trip: live and queued runs, and the last to end."""
    active = wb.store.list_runs(limit=50, status="running")
    queued = wb.store.list_runs(limit=50, status="queued")
    return {"running": active, "queued": queued, "recent": wb.store.recently_finished(limit=8),
            "total": wb.store.count_runs()}


def is_followed(wb: Services, run_id: str) -> bool:
    """Someone holds the run's ingestion lease now (a follower, or its launcher): the TUI then only reads it."""
    return bool(wb.store.lease_holder(lease_name(run_id)))


def metric_series(wb: Services, run_seq: int, buckets: int) -> dict[str, dict[str, Any]]:
    """Every metric of the run, each downsampled in SQLite to at most `buckets` points, for charts."""
    return {name: wb.store.metric_series(run_seq, name, buckets) for name in wb.store.metric_names(run_seq)}


def _host_gone(exc: BaseException) -> bool:
    from workbench.machines.ssh import SSHError
    return isinstance(exc, SSHError)


def pull(wb: Services, ref: str, paths: list[str] | None = None) -> list[tuple[str, int]]:
    """Copies a remote run's output files (all, or those under `paths`) from its host into the run dir here
    (`out/`); (relative path, bytes) per file copied. A local run's files are here already."""
    import posixpath

    run = wb.store.get_run(ref)
    if not run.get("handle"):
        raise WorkbenchError(f"run {run['id']} never started; it has no files")
    machine = run.get("machine") or "local"
    listed = [a for a in wb.store.artifacts(run["seq"]) if not a.get("link") and inside_out(a["path"])]
    if not listed:
        raise WorkbenchError(f"run {run['id']} has no output files recorded",
                             hint="it may still be running: they are listed when it ends")
    wanted = [a for a in listed if not paths or any(a["path"] == p.strip("/") or a["path"].startswith(p.strip("/") + "/")
                                                    for p in paths)]
    if not wanted:
        raise WorkbenchError(f"run {run['id']} has no output file {', '.join(paths or [])}",
                             hint=f"see `workbench runs show {run['id']}`")
    local = wb.dirs.run_dir(run["id"]) / "out"
    if not wb.executors.is_remote(machine):
        return [(a["path"], 0) for a in wanted]
    host = wb.executors.host(machine)  # SFTP only: the host's engine need not answer
    out = out_dir(Handle.from_record(run["handle"]).run_dir)
    copied = []
    for artifact in wanted:
        dest = local / artifact["path"]
        if dest.is_file() and dest.stat().st_size == artifact["size"] and _sha256(dest) == artifact["sha256"]:
            copied.append((artifact["path"], 0))  # fetched before
            continue
        copied.append((artifact["path"], host.fetch(posixpath.join(out, artifact["path"]), dest)))
    return copied


def _sha256(path: "os.PathLike[str]") -> str:
    import hashlib
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def gpu_holders(wb: Services) -> dict[tuple[str, str], str]:
    """(machine, GPU uuid) -> the id of the active run holding it."""
    return wb.store.reserved_gpus()
