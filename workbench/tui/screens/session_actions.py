"""What the Dashboard, the Runs screen and the run detail do with a JupyterLab session (a run of kind
'session'): show its URL and copy it (OSC 52), and stop it (asked first), its changed files brought back.

Both are app workers of the group "session" (one operation notice each, operation_notices.py): reaching a
session may restart its forwarder and wait for Jupyter, stopping it waits for the container and copies files."""

from __future__ import annotations

from typing import Any, cast

from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.run_actions import ACTIVE

SESSION = "session"
GROUP = "session"  # in operation_notices.OPERATION_GROUPS


def not_a_session(run_id: str) -> str:
    return f"{run_id} is a run, not a session"


class SessionActions:
    """Mixed into a screen that says which run is selected (`selected_row`): `o` and `s` act on it when it is
    a session, and say so when it is not."""

    def selected_row(self) -> Any | None:
        """The selected run as the screen last loaded it (the facade's RunRow or RunDetail), if any."""
        raise NotImplementedError

    def session_commands(self, which: str) -> list[tuple[str, str, Any]]:
        """The command palette's entries; `which`: "the selected" or "this"."""
        return [("Session URL", f"show and copy {which} JupyterLab session's URL", self.action_session_url),
                ("Stop session", f"stop {which} session; its changed files come back (asks first)",
                 self.action_stop_session)]

    def _selected_session(self) -> Any | None:
        """The selected run when it is a session; a run is said not to be one."""
        run = self.selected_row()
        if run is not None and run.kind != SESSION:
            cast(Any, self).notify(not_a_session(run.id))
            return None
        return run

    def action_session_url(self) -> None:
        run = self._selected_session()
        if run is None:
            return
        app, run_id = cast(Any, self).app, run.id
        worker = app.run_worker(lambda: _reach(app, run_id), name=f"Cannot reach session {run_id}", group=GROUP,
                                thread=True, exit_on_error=False)
        app.notices.begin(worker, "Session", f"reaching session {run_id} (waiting for JupyterLab)…")

    def action_stop_session(self) -> None:
        run = self._selected_session()
        if run is None:
            return
        app, run_id = cast(Any, self).app, run.id
        question = (f"Stop session {run_id}? Its changed files come back into the project." if run.status in ACTIVE
                    else f"Session {run_id} has ended ({run.status}). Bring its changed files back into the project?")

        def answered(yes: bool | None) -> None:
            if yes:
                worker = app.run_worker(lambda: _stop(app, run_id), name=f"Cannot stop session {run_id}",
                                        group=GROUP, thread=True, exit_on_error=False)
                app.notices.begin(worker, "Session", f"stopping session {run_id}…")
        app.push_screen(ConfirmScreen(question), answered)


def _reach(app: Any, run_id: str) -> None:
    """In a worker thread: the URL once JupyterLab answers, copied and said."""
    session = app.workbench.attach_session(run_id)
    app.call_from_thread(app.copy_to_clipboard, session.url)
    app.say_outcome(f"{session.url}\n(copied where the terminal allows)", title=f"Session {run_id}")


def _stop(app: Any, run_id: str) -> None:
    """In a worker thread: stopped, its files brought back; the outcome says what came back."""
    session = app.workbench.stop_session(run_id)
    app.say_outcome(f"session {session.id} {session.status}; {session.brought_back}", title=f"Session {run_id}")
