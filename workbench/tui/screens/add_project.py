"""A one-field dialog: the folder of a project to register. Tab completes the folder as a shell does: the
common prefix of what matches, a folder with its `/`, the matches listed under the field."""

from __future__ import annotations

import os
from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from workbench.tui.cells import escape
from workbench.tui.screens.dialog import Dialog

HINT = "tab completes · enter adds · esc cancels"
SHOWN_MATCHES = 8


@dataclass(frozen=True)
class Completion:
    text: str  # what the field holds after the Tab (as typed: a leading ~ is kept)
    matches: list[str]  # the names that matched, folders with their "/"


def complete_path(text: str) -> Completion:
    """Completes the last part of `text` among the entries of the folder it names (relative to the working
    directory, `~` expanded for the lookup only); hidden entries only when that part starts with a dot."""
    if text == "~":
        return Completion("~/", ["~/"])
    folder, _, start = text.rpartition("/")
    folder = folder + "/" if text.startswith("/") or folder else ""
    lookup = os.path.expanduser(folder or ".")
    try:
        names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in os.scandir(lookup)
                       if entry.name.startswith(start) and (start.startswith(".") or not entry.name.startswith(".")))
    except OSError:  # no such folder, or not one we may read: nothing to offer
        return Completion(text, [])
    if not names:
        return Completion(text, [])
    return Completion(folder + os.path.commonprefix(names), names)


class Completed(Message):
    def __init__(self, typed: str, completion: Completion) -> None:
        super().__init__()
        self.typed, self.completion = typed, completion


class AddProjectScreen(Dialog[str | None]):
    BINDINGS = [Binding("tab", "complete", "Complete the folder", id="add_project.complete")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Add a project[/b]: the folder holding its workbench.toml")
            yield Input(placeholder="~/code/my-experiment", id="path")
            yield Static(HINT, id="add-hint", classes="hint")

    def action_complete(self) -> None:
        self.complete(self.query_one("#path", Input).value)

    @work(thread=True, exclusive=True, exit_on_error=False, group="add-project-complete")
    def complete(self, typed: str) -> None:  # reads a folder: never on the event loop
        self.post_message(Completed(typed, complete_path(typed)))

    def on_completed(self, message: Completed) -> None:
        field = self.query_one("#path", Input)
        if field.value != message.typed:  # typed on meanwhile: that wins
            return
        completion = message.completion
        field.value = completion.text
        field.cursor_position = len(completion.text)
        hint = self.query_one("#add-hint", Static)
        if len(completion.matches) > 1:
            more = len(completion.matches) - SHOWN_MATCHES
            listed = "  ".join(completion.matches[:SHOWN_MATCHES]) + (f"  … {more} more" if more > 0 else "")
            hint.update(escape(listed))
        else:
            hint.update(HINT if completion.matches else f"nothing here starts with that · {HINT}")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
