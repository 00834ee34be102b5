"""One notification per operation (a launch, a deploy, a rollback): its progress lines replace it in place and
its outcome replaces it last, where a toast per line used to stack 4–6 deep over the log.

An operation is one worker: a progress line said in that worker's thread (the services' `progress`) belongs to
it. Launches and deploys begin theirs before the worker starts ("launching …"); a worker of another
OPERATION_GROUPS group gets one at its first line. Lines said outside such a worker (the reconciler's, a
watch's) stay notifications of their own.

Textual has no "update a notification" (a toast is drawn once per notification identity): App.notify is
handed the notice to show and the one it replaces, and swaps them at once on the event loop (see there)."""

from __future__ import annotations

import weakref
from typing import Any

from textual.notifications import Notification
from textual.worker import NoActiveWorker, Worker, get_current_worker

# Worker groups whose progress lines are one operation's (a change a user asked for, with an outcome), and
# the title of its notice while it goes.
OPERATION_GROUPS = {"launch": "Launch", "deploy": "Deploy", "run-actions": "Run", "deployments-edit": "Deployment",
                    "register": "Register model", "session": "Session"}
PROGRESS_SECONDS = 600  # a progress notice stays while the operation runs (a first build takes minutes)
OUTCOME_SECONDS = 8
FAILURE_SECONDS = 12
# Lines still worth reading once the operation has ended: its outcome carries them (a warning, the one-time
# token of a deploy) rather than letting the next line replace them.
KEPT_PREFIXES = ("warning:", "note:")
KEPT_WORDS = ("Bearer ",)


def current_worker() -> Worker[Any] | None:
    """The worker whose thread calls this, if any (any thread)."""
    try:
        return get_current_worker()
    except NoActiveWorker:
        return None


class OperationNotices:
    """Every method runs on the event loop (App.say and App.say_outcome bring lines from worker threads)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._workers: dict[Worker[Any], str] = {}  # a worker running an operation -> its title
        self._shown: dict[Worker[Any], Notification] = {}  # its notice on screen
        self._kept: dict[Worker[Any], list[str]] = {}
        self._said: weakref.WeakSet[Worker[Any]] = weakref.WeakSet()  # operations whose outcome was said

    def begin(self, worker: Worker[Any], title: str, message: str) -> None:
        """`worker` runs an operation: its first notice, before any line of its own."""
        self._workers[worker], self._kept[worker] = title, []
        self._show(worker, message, title, "information", PROGRESS_SECONDS)

    def runs_operation(self, worker: Worker[Any] | None) -> bool:
        return worker is not None and (worker in self._workers or worker.group in OPERATION_GROUPS)

    def title_of(self, worker: Worker[Any]) -> str:
        """The operation's title (`Deploy`, `Run`): an outcome's, when its caller names none."""
        return self._workers.get(worker) or OPERATION_GROUPS.get(worker.group, "")

    def progress(self, worker: Worker[Any], line: str) -> None:
        if worker not in self._workers:
            if worker.is_finished or worker in self._said:
                return  # a line that arrived after the outcome: the outcome stays
            # its first line starts its notice: kept and coloured as any other (a warning, a token)
            self._workers[worker], self._kept[worker] = OPERATION_GROUPS.get(worker.group, ""), []
        if line.startswith(KEPT_PREFIXES) or any(word in line for word in KEPT_WORDS):
            self._kept[worker].append(line)
        severity = "warning" if line.startswith("warning:") else "information"
        self._show(worker, line, self._workers[worker], severity, PROGRESS_SECONDS)

    def finish(self, worker: Worker[Any], message: str, *, title: str, severity: str = "information") -> None:
        """The outcome replaces the progress notice, with the lines kept from the way there; it expires."""
        self._workers.pop(worker, None)
        self._said.add(worker)
        kept = self._kept.pop(worker, [])
        timeout = FAILURE_SECONDS if severity == "error" or kept else OUTCOME_SECONDS
        self._show(worker, "\n".join([message, *(line for line in kept if line != message)]), title, severity,
                   timeout)
        self._shown.pop(worker, None)

    def worker_ended(self, worker: Worker[Any], error: str | None) -> bool:
        """For every worker that ended; True when it ran an operation whose failure is said here. One that
        ended without saying its outcome leaves its last line to expire."""
        if worker not in self._workers:
            return False
        title = self._workers[worker]
        if error is not None:
            self.finish(worker, error, title=self.app.worker_title(worker), severity="error")
            return True
        shown = self._shown.get(worker)
        self.finish(worker, shown.message if shown else "done", title=title)
        return False

    def _show(self, worker: Worker[Any], message: str, title: str, severity: str, timeout: float) -> None:
        message, title = self.app.plain(message, title)
        notice = Notification(message, title, severity, timeout)  # type: ignore[arg-type]
        replaced = self._shown.get(worker)
        self._shown[worker] = notice
        self.app.notify(message, title=title, severity=severity, timeout=timeout, notice=notice, replacing=replaced)
