"""Exactly-once ingestion of one run's logs and metrics (docs/architecture.md, Exactly-once ingestion).

One process at a time owns a run's ingestion through a lease in the database. Metrics: the rows and the
offset after them commit in one transaction. Logs: lines are appended to the local logs.txt and the
offset commits with the file's new length; before appending, the file is cut back to the committed length,
so whatever a killed process appended without committing is written again exactly once.
"""

from __future__ import annotations

import os
import posixpath
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.execution.base import METRICS_FILE, Executor, Handle, RunState, inside_out, out_dir
from workbench.execution.metrics_parser import parse_metric_lines
from workbench.execution.notebook_lines import failure_reason, last_cell
from workbench.projects.checks import Check, evaluate
from workbench.store import Store
from workbench.store.ingest import Offset
from workbench.store.leases import Lease, LeaseLost, lease_name, lease_ttl, new_owner

METRIC_CHUNK = 1 << 20
POLL = 0.2

LogSink = Callable[[bytes], None]
ProgressSink = Callable[[str], None]
NOTEBOOK_TAIL = 1 << 16  # of the log, where a failed notebook's runner said why
FAILURE_LINES = 20       # ... among its last lines (the other stream may still have printed a few after it)
RUNNER_FAILED = (1, 2)   # the runner's exit codes when a cell failed or the kernel died (1), or nothing ran (2)
PROGRESS_FILE = "progress.txt"  # the line a live run is redrawing now (a tqdm bar); never part of the history


class RunIngestor:
    def __init__(self, store: Store, executor: Executor, run: dict[str, Any], run_dir: Path,
                 owner: str | None = None) -> None:
        self.store = store
        self.executor = executor
        self.run = run
        self.seq = run["seq"]
        self.handle = Handle.from_record(run["handle"]) if run.get("handle") else None
        self.run_dir = run_dir
        self.owner = owner or new_owner()
        self._log_lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None  # made when metrics first arrive: most looks find none
        self.ttl = lease_ttl()
        self.lease = Lease(lease_name(run["id"]), self.owner, self.ttl)
        self._stop_logs = threading.Event()
        self._log_thread: threading.Thread | None = None
        self._progress_thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self._notebook = bool((run.get("spec") or {}).get("notebook"))
        self._progress_lock = threading.Lock()
        self._progress: ProgressSink | None = None
        self._cell: str | None = None       # a notebook run's cell starting now, from the runner's marker
        self._redrawn = ""                  # the line the run is redrawing now (a progress bar)
        self._shown: str | None = None
        self._progress_ended = False        # the progress thread said its last: nothing is shown after it

    # lease ----------------------------------------------------------------------------------------
    def acquire(self) -> bool:
        return self.store.acquire_lease(self.lease.name, self.owner, self.ttl)

    def release(self) -> None:
        self._stop_logs.set()
        if self._log_thread is not None:
            self._log_thread.join(timeout=2)  # a follow stream with no output yet may block; it stops itself
        if self._progress_thread is not None:
            self._progress_thread.join(timeout=1)
            (self.run_dir / PROGRESS_FILE).unlink(missing_ok=True)  # even if that thread is still blocked
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        self.store.release_lease(self.lease.name, self.owner)

    # logs -----------------------------------------------------------------------------------------
    def ingest_logs(self, follow: bool, sink: LogSink | None = None) -> None:
        """Each chunk is written at the end of what is committed (whatever a killed or superseded owner
        appended beyond it is overwritten) and committed with its offset, under the lease, in one step."""
        offset = self.store.get_offset(self.seq, "logs")
        path = self.run_dir / "logs.txt"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as fh:
            fh.truncate(offset.local_size)  # drop what a killed owner appended but never committed
        with open(path, "r+b") as fh:
            for chunk in self.executor.read_logs(self.handle, offset.offset, follow):
                if self._stop_logs.is_set():
                    return  # released: whatever comes now belongs to the next owner
                if not chunk.data and chunk.offset == offset.offset:
                    continue  # only says the logs ended

                def write(after: Offset = offset, data: bytes = chunk.data, position: str = chunk.offset) -> Offset:
                    if self._stop_logs.is_set():  # released meanwhile: a follower's next ingestor shares our
                        raise LeaseLost(self.lease.name)  # owner id, so the lease check alone cannot tell
                    fh.seek(after.local_size)
                    fh.write(data)
                    fh.truncate()
                    fh.flush()
                    return Offset(position, after.lines + data.count(b"\n"), fh.tell())

                with self._log_lock:
                    offset = self.store.commit_log(self.seq, self.lease, write)
                if sink and chunk.data:  # (an offset alone: the source moved on inside a line still being redrawn)
                    sink(chunk.data)
                if self._notebook and chunk.data and self._progress_thread is not None:
                    cell = last_cell(chunk.data)
                    if cell:
                        self._show_progress(cell=cell)

    # metrics --------------------------------------------------------------------------------------
    def ingest_metrics(self, final: bool) -> int:
        """Reads and commits everything available now; returns the number of points added.

        A pipeline of two: while one chunk's rows commit on the writer thread (SQLite releases the GIL
        while it steps), the next chunk is parsed here. Commits stay in order, each with its offset.
        """
        added = 0
        offset = self.store.get_offset(self.seq, "metrics")
        pending: Future[None] | None = None
        try:
            while True:
                chunk = self.executor.read_metrics(self.handle, offset.offset, METRIC_CHUNK, final)
                if chunk.refused:
                    self._warn_once(chunk.refused)
                if not chunk.data and chunk.offset == offset.offset:
                    return added
                warning = None
                if chunk.rewritten_at is not None:  # ordinals go on counting: re-read step-less lines never collide
                    warning = (f"metrics file was truncated or rewritten at byte {chunk.rewritten_at}; "
                               "ingesting it again from its start")
                batch, lines = parse_metric_lines(chunk.data, offset.lines, time.time(), self.store.key_id)
                offset = Offset(chunk.offset, offset.lines + lines, 0)
                if pending is not None:
                    pending.result()
                if self._writer is None:
                    self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"metrics-{self.run['id']}")
                pending = self._writer.submit(self.store.commit_metrics, self.seq, batch, offset, self.lease,
                                              warning)
                added += len(batch.rows)
        finally:
            if pending is not None:
                pending.result()

    def _warn_once(self, message: str) -> None:
        """A warning about the run recorded once, however often (and by whichever process) it is seen."""
        if message not in self._warned:
            self._warned.add(message)
            if all(e["message"] != message for e in self.store.events(self.run["id"])):
                self.store.add_event(self.run["id"], "warning", message)

    # whole run ------------------------------------------------------------------------------------
    def catch_up(self, sink: LogSink | None = None) -> RunState:
        """One pass over everything the run has written so far, its lines handed to `sink` too; finalises it
        if it has ended."""
        state = self.executor.status(self.handle)
        if state.state == "missing":
            self.ingest_logs(follow=False, sink=sink)
            self.ingest_metrics(final=True)
            self.store.finish_run(self.run["id"], "lost", exit_code=None, reason=state.reason)
            return state
        self.ingest_logs(follow=False, sink=sink)
        self.ingest_metrics(final=state.state == "exited")
        if state.state == "exited":
            self.finalize(state)
        return state

    def follow(self, sink: LogSink | None = None, should_stop: Callable[[], bool] | None = None,
               progress: ProgressSink | None = None) -> RunState:
        """Ingests live until the run ends (or `should_stop`), renewing the lease; finalises at the end.
        Meanwhile the line the run is redrawing (its progress bar) is kept in PROGRESS_FILE for anyone
        looking, and handed to `progress`."""
        errors: list[BaseException] = []
        self._progress = progress
        if self._notebook:  # a follower taking over mid-cell: the cell running now is the last one the log named
            self._cell = last_cell(self._log_tail(NOTEBOOK_TAIL))
        self._progress_thread = threading.Thread(target=self._keep_progress,
                                                 name=f"progress-{self.run['id']}", daemon=True)
        self._progress_thread.start()

        def logs() -> None:
            try:
                self.ingest_logs(follow=True, sink=sink)
            except BaseException as exc:  # surfaced by the main loop
                errors.append(exc)

        log_thread = self._log_thread = threading.Thread(target=logs, name=f"logs-{self.run['id']}", daemon=True)
        log_thread.start()
        renewed = time.monotonic()
        while True:
            added = self.ingest_metrics(final=False)
            if errors:
                raise errors[0]
            if time.monotonic() - renewed > self.ttl / 5:
                if not self.acquire():
                    return RunState("running", reason="another process took over ingestion")
                renewed = time.monotonic()
            if should_stop and should_stop():
                return RunState("running")
            if not log_thread.is_alive():
                state = self.executor.status(self.handle)
                if state.state != "running":
                    break
            if not added:
                log_thread.join(timeout=POLL)  # wakes at once when the run's log stream ends
        log_thread.join()
        return self.catch_up(sink)  # (Docker's last line without a newline is completed here: `--wait` shows it)

    def _keep_progress(self) -> None:
        """A courtesy, never part of ingestion: whatever goes wrong here, the history is unaffected."""
        try:
            for line in self.executor.progress(self.handle, self._stop_logs):
                if self._stop_logs.is_set():
                    break
                self._show_progress(redrawn=line)
        except Exception:  # noqa: BLE001
            pass
        finally:
            with self._progress_lock:
                self._progress_ended = True  # a last chunk's cell marker committed after this must not draw again
                (self.run_dir / PROGRESS_FILE).unlink(missing_ok=True)
                if self._progress is not None and self._shown:
                    self._progress("")
                self._shown = None

    def _show_progress(self, *, redrawn: str | None = None, cell: str | None = None) -> None:
        """The progress line: the line being redrawn, after the cell running now in a notebook run
        (`cell 7/23 · 45%|####      | 45/100`), or that cell alone (`cell 7/23: model.fit(x)`)."""
        with self._progress_lock:
            if redrawn is not None:
                self._redrawn = redrawn
            if cell is not None:
                self._cell = cell
            line = self._redrawn
            if self._cell:
                line = f"{self._cell.split(':', 1)[0]} · {line}" if line else self._cell
            if line == self._shown or self._stop_logs.is_set() or self._progress_ended:
                return
            self._shown = line
            path = self.run_dir / PROGRESS_FILE
            try:
                tmp = path.with_name(f".{PROGRESS_FILE}.{os.getpid()}")
                tmp.write_text(line, encoding="utf-8")
                os.replace(tmp, path)
                if self._progress is not None:
                    self._progress(line)
            except Exception:  # noqa: BLE001 - a courtesy, as above
                pass

    def finalize(self, state: RunState) -> None:
        """Records how the run ended. Its checks are evaluated only when it succeeded: a run that failed or
        was cancelled stopped short of its final values, so it gets no verdict (NULL), never a pass. A run
        cancelled because a newer one replaced it (`workbench watch` restarting on a change: an event of kind
        `superseded`, recorded before the cancel) or pruned by its sweep (a `pruned` event) says so instead of
        "cancelled by the user"."""
        self.record_artifacts()
        fresh = self.store.get_run(self.run["id"])
        if state.exit_code == 0:
            status, reason = "succeeded", None
        elif fresh.get("cancel_requested"):
            superseded = [e["message"] for e in self.store.events(self.run["id"])
                          if e["kind"] in ("superseded", "pruned", "cancelled")]  # cancelled: by Slurm, outside
            status, reason = "cancelled", superseded[-1] if superseded else "cancelled by the user"
        else:
            status = "failed"
            reason = state.reason or f"exit code {state.exit_code}"
            if state.reason == "out of memory" and fresh["spec"].get("memory"):
                reason = f"out of memory (limit {fresh['spec']['memory']})"
            said = self._notebook_failure() if state.exit_code in RUNNER_FAILED else None
            if said:
                reason = f"{said} ({reason})" if state.reason == "out of memory" else said
        if state.started_at:
            self.store.update_run(self.run["id"], started_at=state.started_at)
        if status == "succeeded":
            self.evaluate_checks(fresh)
        self.store.finish_run(self.run["id"], status, exit_code=state.exit_code, reason=reason,
                              finished_at=state.finished_at)
        self.executor.cleanup(self.handle)

    def _notebook_failure(self) -> str | None:
        """Why a notebook run failed, in the runner's words (the cell, its first line and the exception): its
        last lines only, where the runner says it last (a cell may print such a line from elsewhere before)."""
        if not self._notebook:
            return None
        return failure_reason(b"\n".join(self._log_tail(NOTEBOOK_TAIL).splitlines()[-FAILURE_LINES:]))

    def _log_tail(self, size: int) -> bytes:
        try:
            with open(self.run_dir / "logs.txt", "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
                return fh.read()
        except OSError:
            return b""

    def evaluate_checks(self, run: dict[str, Any]) -> str | None:
        """The experiment's metric checks on the final (or best) values, recorded with a verdict."""
        checks = [Check(**c) for c in run["spec"].get("checks", [])]
        results = evaluate(checks, lambda name: [v for _, v in self.store.metric_history(self.seq, name)])
        return self.store.record_checks(self.seq, results)

    def record_artifacts(self) -> None:
        """Every output file with its size and sha256, listed and hashed where the run ran (links recorded
        as links, never followed). On a remote machine the spec's declared artifacts are also copied into the
        workstation's run dir (`out/`); the rest stays there, listed (`workbench runs pull` fetches it)."""
        host = self.executor.host
        out = out_dir(self.handle.run_dir)
        skipped: list[str] = []
        listed = [row for row in host.list_outputs(out, skipped) if row[0] != METRICS_FILE]
        self.store.set_artifacts(self.seq, listed)
        if skipped:
            self.store.add_event(self.run["id"], "warning", "output dirs not listed (unreadable, or names that "
                                                            f"are not UTF-8): {', '.join(skipped[:10])}")
        seen = {parent for rel, *_ in listed for parent in _with_parents(rel)}
        declared = [Path(os.path.normpath(a)).as_posix() for a in self.run["spec"].get("artifacts", [])]
        missing = [a for a in declared if a not in seen]
        if missing:
            self.store.add_event(self.run["id"], "warning", f"declared artifacts not written: {', '.join(missing)}")
        if not host.remote:
            return
        wanted = [row for row in listed if row[3] is None and inside_out(row[0])
                  and any(row[0] == a or row[0].startswith(a + "/") for a in declared)]
        from workbench.machines.ssh import SSHError

        copied, failed = 0, []
        for rel, *_ in wanted:
            try:
                copied += host.fetch(posixpath.join(out, rel), self.run_dir / "out" / rel)
            except WorkbenchError as exc:
                if isinstance(exc, SSHError):
                    raise  # the whole pass is tried again when the host answers
                failed.append(f"{rel} ({exc.message})")
        if wanted:
            self.store.add_event(self.run["id"], "artifacts", f"copied {len(wanted) - len(failed)} declared "
                                 f"artifact file(s) ({copied:,} bytes) from {host.name}")
        if failed:
            self.store.add_event(self.run["id"], "warning", "declared artifacts not copied (still listed, "
                                 f"`workbench runs pull` tries again): {'; '.join(failed[:5])}")


def _with_parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]


