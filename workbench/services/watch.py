"""`[watch]` put to work: a change to the project's watched files re-runs its experiment; a change while a
watch-triggered run is going restarts it (on_busy = "restart") or queues one run behind it ("queue").
Each trigger and each run's verdict is reported as one line."""

from __future__ import annotations

import threading
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.projects.spec import ProjectSpec, load_spec
from workbench.projects.watcher import FolderWatcher
from workbench.services.context import Services

POLL_RUNS = 0.3


class WatchSession:
    def __init__(self, wb: Services, spec: ProjectSpec, say: Callable[[str], None], *, polling: bool = False,
                 debounce: float | None = None) -> None:
        assert spec.watch is not None
        self.wb, self.spec, self.rule, self.say = wb, spec, spec.watch, say
        self.current: str | None = None     # the watch-triggered run going now
        self.queued = False
        self.runs: list[str] = []
        self.state = "watching"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        kwargs: dict[str, Any] = {"debounce": debounce} if debounce is not None else {}
        self.watcher = FolderWatcher(spec.root, self._changed, paths=self.rule.paths,
                                     ignore=[*self.rule.ignore, *spec.exclude], polling=polling,
                                     on_status=say, **kwargs)
        self._monitor = threading.Thread(target=self._follow_runs, name=f"watch-runs-{spec.name}", daemon=True)

    def start(self) -> "WatchSession":
        self.watcher.start()
        self._monitor.start()
        self.say(f"watching {self.spec.root} ({self.watcher.mode}): a change runs {self.spec.name}/{self.rule.run}"
                 f"; busy → {self.rule.on_busy}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self.watcher.stop()
        self._monitor.join(timeout=2)

    def _changed(self, paths: list[str]) -> None:
        shown = ", ".join(paths[:3]) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else "")
        self.state = "change seen"
        with self._lock:
            busy = self.current is not None
            if busy and self.rule.on_busy == "queue":
                self.queued = True
                self.say(f"change: {shown}; run {self.current} is going, one run queued behind it")
                return
            previous = self.current
        if busy and previous:
            self.say(f"change: {shown}; restarting (cancelling run {previous})")
            try:
                # Said before the cancel, so the run's end records why: superseded, not cancelled by the user.
                self.wb.store.add_event(previous, "superseded", f"superseded by a change to {shown}")
                self.wb.cancel(previous)
            except WorkbenchError:
                pass
        else:
            self.say(f"change: {shown}")
        new = self._launch()
        if busy and previous and new:
            self._superseded(previous, new)

    def _superseded(self, old: str, new: str) -> None:
        """Names the run that replaced `old`: for its end if it is still ending, else in its final record."""
        message = f"superseded by run {new}"
        try:
            self.wb.store.add_event(old, "superseded", message)
            run = self.wb.store.get_run(old)
            if run["status"] == "cancelled" and (run.get("status_reason") or "").startswith("superseded by"):
                self.wb.store.update_run(old, status_reason=message)
        except WorkbenchError:
            pass  # removed meanwhile

    def _launch(self) -> str | None:
        try:
            run = self.wb.launch(str(self.spec.root), self.rule.run)
        except WorkbenchError as exc:
            self.state = "launch failed"
            self.say(f"cannot start {self.rule.run}: {exc}")
            return None
        self.wb.follow_in_background(run["id"])
        with self._lock:
            self.current = run["id"]
            self.runs.append(run["id"])
        self.state = "run started"
        self.say(f"run {run['id']} started")
        return run["id"]

    def _follow_runs(self) -> None:
        while not self._stop.wait(POLL_RUNS):
            with self._lock:
                current = self.current
            if current is None:
                continue
            try:
                run = self.wb.store.get_run(current)
            except WorkbenchError:
                continue
            if run["status"] in ("queued", "running"):
                continue
            self.say(self.verdict(run))
            self.state = f"last: {run.get('verdict') or run['status']}"
            with self._lock:
                self.current = None
                launch_next, self.queued = self.queued, False
            if launch_next:
                self._launch()

    @staticmethod
    def verdict(run: dict[str, Any]) -> str:
        text = f"run {run['id']} {run['status']}"
        if run.get("status_reason") and run["status"] != "succeeded":
            text += f" ({run['status_reason']})"
        if run.get("verdict"):
            text += f": checks {run['verdict'].upper()}"
        summary = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in list(run.get("summary", {}).items())[:4])
        return text + (f" — {summary}" if summary else "")


def watch(wb: Services, path: str, say: Callable[[str], None], *, polling: bool = False,
          debounce: float | None = None) -> WatchSession:
    """Starts watching a project per its [watch] table; `say` gets a line per trigger and verdict."""
    spec = load_spec(path)
    if spec.watch is None:
        raise WorkbenchError(f"{spec.spec_path}: no [watch] table", hint="add [watch] with run = \"EXPERIMENT\"")
    return WatchSession(wb, spec, say, polling=polling, debounce=debounce).start()
