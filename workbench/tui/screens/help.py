"""`?`: the keys of the screen underneath, generated from its active bindings (never a hand-kept list)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from workbench.tui.screens.dialog import Dialog


class HelpScreen(Dialog[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen > .dialog { width: 72; }
    HelpScreen DataTable { height: auto; max-height: 18; }
    """

    def __init__(self, title: str, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]Keys: {self.title_text}[/b]")
            table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("key", "action", "binding id")
            for row in self.rows:
                table.add_row(*(Text(value) for value in row))  # keys like "[" are not markup
            yield table
            yield Static("Remap any binding in config.toml: [keymap] \"binding id\" = \"keys\"", classes="hint")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


def help_rows(screen: object) -> list[tuple[str, str, str]]:
    """(key, description, id) of every binding active on `screen` (its widgets' and the app's)."""
    rows, seen = [], set()
    bindings = [active.binding for active in screen.active_bindings.values()]  # type: ignore[attr-defined]
    # The screen's own bindings too, where a focused widget shadows the key (enter on a table opens).
    own = screen._bindings.key_to_bindings.values()  # type: ignore[attr-defined]
    bindings += [binding for group in own for binding in group]
    for binding in bindings:
        name = binding.id or binding.action
        if not binding.description or name in seen:
            continue
        seen.add(name)
        display = screen.app.get_key_display(binding)  # type: ignore[attr-defined]
        rows.append((display, binding.description, binding.id or ""))
    return rows
