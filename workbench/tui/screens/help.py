"""`?`: the keys of the screen underneath, generated from its active bindings (never a hand-kept list).
A list without a cursor: j, k, the arrows and pgup/pgdn scroll it."""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from workbench.tui.screens.dialog import Dialog


def in_words(name: str) -> str:
    """A screen's class name as a user reads it: "RunDetail" -> "Run detail"."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.removesuffix("Screen")).capitalize()


class HelpScreen(Dialog[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close"),
                Binding("j", "scroll(1)", "Scroll down", show=False, id="help.down"),
                Binding("k", "scroll(-1)", "Scroll up", show=False, id="help.up")]
    # 24 rows: the title, 16 rows of keys and the hint inside the border (90% of the screen at most)
    DEFAULT_CSS = """
    HelpScreen > .dialog { width: 72; }
    HelpScreen DataTable { height: auto; max-height: 70vh; }
    """

    def __init__(self, screen_name: str, rows: list[tuple[str, str, str, str]]) -> None:
        super().__init__()
        self.title_text = in_words(screen_name)
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]Keys: {self.title_text}[/b]", id="help-title")
            # no cursor: the arrows and pages move what is shown (a row cursor moved 18 rows before any scrolled)
            table: DataTable[str] = DataTable(cursor_type="none", zebra_stripes=True)
            table.add_columns("key", "action", "binding id")
            group = None
            for where, *row in self.rows:
                if where != group:
                    group = where
                    table.add_row(Text(""), Text(where, style="bold"), Text(""))  # keeps the key column narrow
                table.add_row(*(Text(value) for value in row))  # keys like "[" are not markup
            yield table
            yield Static(Text('Remap any binding in config.toml: [keymap] "binding id" = "keys"'), classes="hint")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)

    def action_scroll(self, rows: int) -> None:
        self.query_one(DataTable).scroll_relative(y=rows, animate=False)


HELP_GROUPS = ("This screen", "Everywhere", "Lists, fields and the terminal")


def help_rows(screen: object) -> list[tuple[str, str, str, str]]:
    """(group, key, description, id) of every binding active on `screen`: its own actions first, then the
    app's, then the focused widget's generic keys (cursor, page, copy)."""
    def flat(bindings_map: object) -> list[Binding]:
        return [b for group in bindings_map.key_to_bindings.values() for b in group]  # type: ignore[attr-defined]

    app = screen.app  # type: ignore[attr-defined]
    # The screen's own bindings too where a focused widget shadows the key (enter on a table opens).
    own = [b for b in flat(screen._bindings) if b.id]  # type: ignore[attr-defined]
    everywhere = [b for b in flat(app._bindings) if b.id]
    active = [active.binding for active in screen.active_bindings.values()]  # type: ignore[attr-defined]
    generic = [b for b in active + flat(screen._bindings) + flat(app._bindings)  # type: ignore[attr-defined]
               if b not in own and b not in everywhere]
    rows, seen = [], set()
    for group, bindings in zip(HELP_GROUPS, (own, everywhere, generic)):
        for binding in bindings:
            name = binding.id or binding.action
            if not binding.description or name in seen:
                continue
            seen.add(name)
            rows.append((group, app.get_key_display(binding), binding.description, binding.id or ""))
    return rows
