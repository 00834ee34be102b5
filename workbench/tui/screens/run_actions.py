"""What the Runs screen and the run detail share: cancel and delete (asked first), the message a removal
posts, and the mark of a screen listing runs, whose cursor follows the run opened over it."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from workbench.tui.screens.confirm import ConfirmScreen

ACTIVE = ("queued", "running")


class RunRemoved(Message):
    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id


class RunList:
    """A screen listing runs (the Runs screen): a run's detail opened over it puts its cursor on that run, so
    going back leaves the run selected."""

    def select(self, run_id: str) -> None:
        raise NotImplementedError


class RunActions:
    """Cancel and delete, asked first (ConfirmScreen), shared by the Runs screen and the run detail. The
    removal runs in an app worker (its failure reaches the app's one handler) and posts RunRemoved here."""

    def confirm_cancel(self, run_id: str, status: str | None) -> None:
        screen: Any = self
        if status is not None and status not in ACTIVE:
            screen.notify(f"run {run_id} has already ended ({status})")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                screen.app.run_action_on_run("cancel", run_id)
        screen.app.push_screen(ConfirmScreen(f"Cancel run {run_id}? It is stopped now and recorded as "
                                             "cancelled."), answered)

    def confirm_delete(self, run_id: str, status: str | None) -> None:
        screen: Any = self
        force = status in ACTIVE
        question = (f"Run {run_id} is {status}: cancel it, then delete it with its logs, metrics and artifacts?"
                    if force else f"Delete run {run_id} with its logs, metrics and artifacts? This cannot be undone.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.deleting(run_id)
                wb = screen.workbench
                screen.app.run_worker(lambda: self._remove_run(wb, run_id, force), name=f"Cannot delete run {run_id}",
                                      group="run-delete", thread=True, exit_on_error=False)
        screen.app.push_screen(ConfirmScreen(question), answered)

    def deleting(self, run_id: str) -> None:
        """Called on the event loop when the user confirmed a delete (override)."""

    def _remove_run(self, wb: Any, run_id: str, force: bool) -> None:
        """In a worker thread. Not forced, a run that became active since the question is refused (the
        refusal says to cancel it first)."""
        wb.remove(run_id, force=force)
        self.post_message(RunRemoved(run_id))  # type: ignore[attr-defined]
