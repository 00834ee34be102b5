"""The run history: paged from SQLite (never all 100,000 rows in a DataTable), filtered by text (and
`key=value` as the table shows params and metrics), status and project, sorted by any column or by a param
or metric, updated live by difference."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from rich.cells import cell_len
from rich.text import Text

from workbench.formatting import (RunLike, duration, elide, fit_items, money, pairs, reading_order, short_value,
                                  shown_status, started)
from workbench.tui.cells import ItemsText, cell, escape, metrics_cell, project_cell, table_status
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.run_actions import RunActions, RunList, RunRemoved
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.screens.session_actions import SessionActions
from workbench.tui.screens.sweep import SweepScreen
from workbench.tui.screens.sweeps import SweepsScreen
from workbench.tui.widgets.cursor import cursor_key
from workbench.tui.widgets.fitted_table import FittedTable

PAGE = 100
COLUMNS = (("id", "id"), ("status", "status"), ("project/experiment", "project"), ("params", None),
           ("metrics", None), ("machine", "machine"), ("started", "created"), ("duration", "duration"), ("cost", None))
# Widths are set, never measured by the table from its cells: a page paints in one pass whatever its content.
# (column, least width, share of the spare width): a wide terminal widens the metrics most, then the params,
# then the names. Params and metrics are never narrower than a page's first items (set from the page).
LAYOUT = (("id", 8, 0), ("status", 9, 0), ("project/experiment", 14, 1), ("params", 10, 2), ("metrics", 10, 3),
          ("machine", 7, 0), ("started", 11, 0), ("duration", 8, 0))
MOST_FOR_FIRST_ITEM = 30  # a first item wider than this is not given the room: its column shows `…` there
COST_COLUMN = ("cost", 7, 0)  # added while the page shows a run on a machine with a rate
VALUE_COLUMN = ("sort-value", 8, 0)  # after the status while a param or metric is the sort: its values
PROJECT_LABELS = ("project/experiment", "project/exp", "project")  # the first that fits the column
SORTABLE = [sort for _, sort in COLUMNS if sort]
STATUSES = (None, "running", "queued", "succeeded", "failed", "cancelled", "lost")


@dataclass(frozen=True)
class Query:
    offset: int = 0
    text: str = ""
    status: str | None = None
    project: str | None = None
    sort: str = "created"
    descending: bool = True


class CountLoaded(Message):
    def __init__(self, request: int, total: int) -> None:
        super().__init__()
        self.request, self.total = request, total


class SortKeysLoaded(Message):
    def __init__(self, filters: tuple[Any, ...], keys: list[str]) -> None:
        super().__init__()
        self.filters, self.keys = filters, keys


class PageLoaded(Message):
    def __init__(self, request: int, query: Query, runs: list[RunLike], projects: list[str]) -> None:
        super().__init__()
        self.request, self.query, self.runs, self.projects = request, query, runs, projects


def reading(wb: Any, runs: list[Any]) -> list[Any]:
    """The page's runs with their params and metrics in reading order (formatting.reading_order): the params
    that differ within the page first, each run's lead metric (its sweep's objective, else its first check's)
    first. In the page worker: the lead metrics read each sweep once and each other run's record."""
    ordered = reading_order(runs, wb.lead_metrics(runs))
    return [replace(run, params=params, summary=metrics) for run, (params, metrics) in zip(runs, ordered)]


def first_items_width(text: Text) -> int:
    """The cells a params or metrics cell needs to show its first item whole (its prefix, and ` …` when more
    items follow): the least its column may be."""
    if not isinstance(text, ItemsText) or not text.items:
        return 0
    return text.prefix.cell_len + cell_len(fit_items(text.items[:1], 10**6, len(text.items) > 1 or text.more))


class RunsTable(FittedTable):
    """The table's own movement keys (arrows, page up/down, home/end) turn pages at the page's edges."""

    # Where the width runs out, columns give way in this order until the rest fit: hidden (width 0) or
    # narrowed. Params and metrics never narrow below the page's first items (the param that differs, the
    # lead metric: see formatting.reading_order), so neither is ever a column of bare `…`; the names narrow
    # first, and params go last of all, the metrics never. A page with a run on another machine keeps the
    # machine column, and the start time gives way first (the duration stays); a page of local runs only,
    # where the column would say "local" on every row, lets it go first. The cost column is there only on a
    # page with a run on a machine that has a rate, and gives way first.
    LOCAL_ORDER = (("hide", "cost"), ("hide", "machine"), ("hide", "started"),
                   ("narrow", {"project/experiment": 12}), ("narrow", {"project/experiment": 10}),
                   ("hide", "duration"), ("narrow", {"project/experiment": 8}), ("hide", "params"))
    REMOTE_ORDER = (("hide", "cost"), ("hide", "started"), ("narrow", {"project/experiment": 10}),
                    ("narrow", {"project/experiment": 8}), ("hide", "machine"), ("hide", "duration"),
                    ("hide", "params"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_layout = self.column_layout
        self.remote = False  # the page shows a run on another machine (set by the screen)
        self.costed = False  # the page shows a run with a cost: the cost column is there (set by the screen)
        self.value_key: str | None = None  # the param or metric sorting the page: its column is there
        self.first_items: dict[str, int] = {}  # params/metrics: the width the page's first items take

    def show_first_items(self, widths: dict[str, int]) -> None:
        if widths != self.first_items:
            self.first_items = widths
            self.fit_columns()

    def layout_for(self, available: int) -> Sequence[tuple[str, int, int]]:
        """At 80 columns every row still shows id, status, what and how it went, and where it ran when the
        page holds a run that did not run here."""
        layout = [(k, max(len(k), min(self.first_items[k], MOST_FOR_FIRST_ITEM)) if k in self.first_items else least,
                   weight) for k, least, weight in self.column_layout]
        for step, what in (self.REMOTE_ORDER if self.remote else self.LOCAL_ORDER):
            if sum(least for _, least, _ in layout) <= available:
                break
            if step == "hide":
                layout = [(k, 0, 0) if k == what else (k, least, weight) for k, least, weight in layout]
            else:
                layout = [(k, min(least, what.get(k, least)), weight) for k, least, weight in layout]
        return layout

    def fit_columns(self) -> None:
        super().fit_columns()
        self._fit_labels()

    def _fit_labels(self) -> None:
        """Each column's label in its width: the project's shortened by whole words (`project/experi` read as
        a typo), the sort value's name ending in `…`."""
        changed = False
        for key, column in self.columns.items():
            if not column.width:
                continue
            if key.value == "project/experiment":
                label = next((l for l in PROJECT_LABELS if len(l) <= column.width), PROJECT_LABELS[-1])
            elif key.value == VALUE_COLUMN[0]:
                label = elide(self.value_key or "", column.width)
            else:
                continue
            if str(column.label) != label:
                column.label = Text(label)
                changed = True
        if changed:
            self._clear_caches()
            self.refresh()

    def show_remote(self, remote: bool) -> None:
        if remote != self.remote:
            self.remote = remote
            self.fit_columns()

    def show_extras(self, costed: bool, value_key: str | None) -> bool:
        """Adds or removes the cost column and the sort value's column (a hidden column would still take its
        padding); True when the rows must be rebuilt. The columns are made again in their order: the value
        column sits after the status, where the eye starts."""
        if (costed, value_key) == (self.costed, self.value_key):
            return False
        self.costed, self.value_key = costed, value_key
        layout = list(self.base_layout)
        if value_key is not None:
            layout.insert([k for k, _, _ in layout].index("status") + 1, VALUE_COLUMN)
        if costed:
            layout.append(COST_COLUMN)
        self.column_layout = tuple(layout)
        self.clear(columns=True)
        for key, least, _ in layout:
            label = (value_key or "") if key == VALUE_COLUMN[0] else key
            self.add_column(label, width=least, key=key)
        self.fit_columns()
        return True

    def action_cursor_down(self) -> None:
        self.screen.action_down()  # type: ignore[attr-defined]

    def action_cursor_up(self) -> None:
        self.screen.action_up()  # type: ignore[attr-defined]

    def action_page_down(self) -> None:
        self.screen.action_next_page()  # type: ignore[attr-defined]

    def action_page_up(self) -> None:
        self.screen.action_previous_page()  # type: ignore[attr-defined]

    def action_scroll_home(self) -> None:
        self.screen.action_newest()  # type: ignore[attr-defined]

    def action_scroll_end(self) -> None:
        self.screen.action_oldest()  # type: ignore[attr-defined]


class RunsScreen(RunActions, SessionActions, RunList, BaseScreen):
    MODE = "runs"
    BINDINGS = [
        Binding("enter", "open", "Open", id="runs.open"),
        Binding("space", "mark", "Mark for compare", show=False, id="runs.mark"),
        Binding("C", "compare", "Compare marked", show=False, id="runs.compare"),
        Binding("w", "sweep", "Sweep of this trial", show=False, id="runs.sweep"),
        Binding("W", "sweeps", "Sweeps", show=False, id="runs.sweeps"),
        Binding("slash", "filter", "Filter", id="runs.filter"),
        Binding("f", "cycle_status", "Status", id="runs.status"),
        # not in the footer (80 columns keep `? Help` and `q Quit` there): the help and the palette list it
        Binding("p", "cycle_project", "Project", show=False, id="runs.project"),
        Binding("s", "cycle_sort", "Sort", id="runs.sort"),
        Binding("S", "reverse", "Reverse", show=False, id="runs.reverse"),
        Binding("o", "cycle_value_sort", "Sort by param/metric", show=False, id="runs.sort_value"),
        Binding("c", "cancel_run", "Cancel", id="runs.cancel"),
        Binding("d,delete", "delete_run", "Delete", id="runs.delete"),
        Binding("R", "rerun", "Rerun", id="runs.rerun"),
        # a JupyterLab session's (`o` and `s` sort here; the Dashboard takes those too)
        Binding("u", "session_url", "Session URL", show=False, id="runs.session_url"),
        Binding("x", "stop_session", "Stop session", show=False, id="runs.stop_session"),
        Binding("j,down", "down", "Down", show=False, id="runs.down"),
        Binding("k,up", "up", "Up", show=False, id="runs.up"),
        Binding("ctrl+f,pagedown", "next_page", "Next page", show=False, id="runs.next_page"),
        Binding("ctrl+b,pageup", "previous_page", "Previous page", show=False, id="runs.previous_page"),
        Binding("g,home", "newest", "Newest", show=False, id="runs.newest"),
        Binding("G,end", "oldest", "Oldest", show=False, id="runs.oldest"),
        Binding("r", "reload", "Refresh", show=False, id="runs.refresh"),
    ]
    DEFAULT_CSS = """
    RunsScreen #runs-status { height: 1; padding: 0 1; color: $text-muted; }
    RunsScreen DataTable { height: 1fr; }
    RunsScreen #runs-filter { dock: bottom; display: none; margin-bottom: 1; }
    RunsScreen #runs-filter.shown { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.query_state = Query()
        self.total = 0
        self.projects: list[str] = []
        self.shown: dict[str, Any] = {}  # the page's runs (the facade's RunRow) by id, as last loaded
        self.marked: list[str] = []  # runs marked for comparing (space), in the order marked
        self._cursor_to: str | None = None  # "top" / "bottom" after a page turn
        self._select: str | None = None  # a run to put the cursor on once a page shows it (select())
        self.pages_shown = 0  # pages painted so far (tests and benchmarks wait on it)
        self._request = 0
        self._requested_at: float | None = time.perf_counter()  # the first paint counts from creation
        # "param:NAME" and "metric:NAME" of the filtered history, for `o`: (filters, keys), until the filter
        # or the history's count changes
        self._sort_keys: tuple[tuple[Any, ...], list[str]] | None = None
        self._step_when_keys_load = False  # `o` was pressed before the keys of this filter were read
        self.repaint_latency: float | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("loading…", id="runs-status")
        yield RunsTable(LAYOUT, cursor_type="row", zebra_stripes=True, id="runs-table")
        yield Input(placeholder="filter: text, or key=value as shown (lr=0.3) — enter keeps, esc clears",
                    id="runs-filter")

    @property
    def table(self) -> RunsTable:
        return self.query_one("#runs-table", RunsTable)

    # data -----------------------------------------------------------------------------------------
    def reload(self) -> None:
        self._request += 1  # only the newest request's answers are shown
        self.load_page(self._request, self.query_state)

    def action_reload(self) -> None:
        self.reload()

    def _set_query(self, **changes: Any) -> None:
        if set(changes) - {"offset"} and self._cursor_to is None:
            self._cursor_to = "top"  # a new filter or order starts at its first row
        self.query_state = replace(self.query_state, **changes)
        self._requested_at = time.perf_counter()
        self.reload()

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-page")
    def load_page(self, request: int, query: Query) -> None:
        wb = self.workbench  # reconciling is the app's own timer's job: a page never waits for it
        filters = dict(status=query.status, project=query.project, text=query.text or None)
        if query.offset < 0:  # "the last page": needs the count first
            total = wb.count_runs_matching(**filters)
            query = replace(query, offset=max(0, (total - 1) // PAGE * PAGE))
        runs = wb.run_page(limit=PAGE, offset=query.offset, sort=query.sort, descending=query.descending, **filters)
        if not runs and query.offset > 0:  # runs were removed under us: show the last page there is
            total = wb.count_runs_matching(**filters)
            query = replace(query, offset=max(0, (total - 1) // PAGE * PAGE))
            runs = wb.run_page(limit=PAGE, offset=query.offset, sort=query.sort, descending=query.descending,
                               **filters)
        runs = reading(wb, runs)
        projects = wb.project_names() if not self.projects else self.projects
        # The page paints first; the count (a full scan under a text filter) follows.
        self.post_message(PageLoaded(request, query, runs, projects))
        self.post_message(CountLoaded(request, wb.count_runs_matching(**filters)))

    def on_page_loaded(self, message: PageLoaded) -> None:
        if message.request != self._request:
            return  # an answer to an older request (a refresh that finished late, an older filter)
        self.query_state = message.query
        self.projects = sorted(set(message.projects) | {r.project for r in message.runs})
        self._show(message.runs)
        self._update_status()
        self.pages_shown += 1
        if self._requested_at is not None:
            requested, self._requested_at = self._requested_at, None
            self.call_after_refresh(self._painted, requested)

    def _painted(self, requested: float) -> None:
        self.repaint_latency = time.perf_counter() - requested  # a key press to the new page on screen

    def on_count_loaded(self, message: CountLoaded) -> None:
        if message.request == self._request:
            if message.total != self.total:
                self._sort_keys = None  # runs came or went: their keys are read again at the next `o`
            self.total = message.total
            self._update_status()

    def _show(self, runs: list[Any]) -> None:
        """Rows by difference: cells that changed are updated, rows gone are removed and rows that follow
        the kept ones are appended; only a reordered page (a new sort, a new run at the top) is rebuilt."""
        table = self.table
        now = self.clock()
        self.shown = {run.id: run for run in runs}
        wanted = [(run.id, self._cells(run, now)) for run in runs]
        wanted_keys = [run_id for run_id, _ in wanted]
        current_keys = [key.value for key in table.rows]
        selected = current_keys[table.cursor_row] if current_keys and 0 <= table.cursor_row < len(current_keys) else None
        kept = [key for key in current_keys if key in self.shown]
        with self.app.batch_update():
            table.show_remote(any((run.machine or "local") != "local" for run in runs))
            table.show_first_items({
                "params": max((first_items_width(cell(pairs(run.params))) for run in runs), default=0),
                "metrics": max((first_items_width(metrics_cell(run)) for run in runs), default=0)})
            rebuilt = table.show_extras(any(run.hourly_cost is not None for run in runs), self._value_key())
            if rebuilt:
                wanted = [(run.id, self._cells(run, now)) for run in runs]
            if not rebuilt and kept == wanted_keys[:len(kept)] and (kept or not current_keys):  # else: another page
                for key in current_keys:
                    if key not in self.shown:
                        table.remove_row(key)
                columns = [key.value for key in table.columns]
                for run_id, cells in wanted[:len(kept)]:  # the rows kept: touch only the cells that changed
                    for column, value in zip(columns, cells):
                        if table.get_cell(run_id, column) != value:
                            table.update_cell(run_id, column, value, update_width=True)
                for run_id, cells in wanted[len(kept):]:
                    table.add_row(*cells, key=run_id)
            else:
                table.clear()
                for run_id, cells in wanted:
                    table.add_row(*cells, key=run_id)
            if self._select in table.rows:
                table.move_cursor(row=table.get_row_index(self._select))
            elif self._cursor_to == "bottom":
                table.move_cursor(row=len(wanted) - 1)
            elif self._cursor_to == "top" or (selected is None and kept != current_keys):
                table.move_cursor(row=0)
            elif selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected))
        self._cursor_to = self._select = None

    def _value_key(self) -> str | None:
        """The param or metric name the page is sorted by, if any."""
        kind, _, name = self.query_state.sort.partition(":")
        return name if kind in ("param", "metric") and name else None

    def _cells(self, run: Any, now: float) -> tuple[Text, ...]:
        """The run's cells in the order of the table's columns."""
        table = self.table
        cells = {"id": self._id_cell(run.id), "status": table_status(run),
                 "project/experiment": project_cell(run),
                 "params": cell(pairs(run.params)), "metrics": metrics_cell(run), "machine": cell(run.machine),
                 "started": cell(started(run)), "duration": cell(duration(run, now))}
        if table.value_key is not None:
            kind = self.query_state.sort.partition(":")[0]
            values = run.params if kind == "param" else run.summary
            cells["sort-value"] = cell(short_value(values[table.value_key]) if table.value_key in values else "-")
        if table.costed:
            cells["cost"] = cell(money(self.workbench.run_cost(run, now)))
        return tuple(cells[key.value] for key in table.columns)

    def _id_cell(self, run_id: str) -> Text:
        return cell(run_id, "reverse bold") if run_id in self.marked else cell(run_id)

    def _update_status(self) -> None:
        q = self.query_state
        shown = len(self.table.rows)
        where = f"{q.offset + 1 if shown else 0}–{q.offset + shown} of {self.total:,}"
        # What reads first stays whole at 80 columns: the marks and the unreachable hosts come before the
        # order and the filters, and a filter is said only when one is set (`status all` said nothing).
        parts = [f"runs {where}"]
        if self.marked:
            parts.append(f"[b]{len(self.marked)} marked[/b] (C compares)")
        unreachable = sorted({run.machine for run in self.shown.values() if shown_status(run) == "unreachable"})
        if unreachable:  # what "running?" in the status column means
            parts.append(f"[bold yellow]{escape(', '.join(unreachable))} unreachable[/]")
        parts.append(f"sort {escape(q.sort)} {'↓' if q.descending else '↑'}")
        if q.status:
            parts.append(f"status {q.status}")
        if q.project:
            parts.append(f"project {escape(q.project)}")
        if q.text:
            parts.append(f"filter “{escape(q.text)}”")
        self.query_one("#runs-status", Static).update(" · ".join(parts))

    def select(self, run_id: str) -> None:
        """Puts the cursor on `run_id` (a run just launched, a run opened from here): at once when the page
        shows it, else the first page of the current order is loaded and the cursor goes to it there (a
        launched run is the newest); where the filter or order puts it elsewhere, the cursor stays."""
        tables = self.query("#runs-table")  # none yet: the first page selects it
        table = tables.first(DataTable) if tables else None
        if table is not None and run_id in table.rows:
            table.move_cursor(row=table.get_row_index(run_id))
            return
        self._select = run_id
        if self.query_state.offset != 0:
            self._set_query(offset=0)
        else:
            self.reload()

    # actions --------------------------------------------------------------------------------------
    def selected_run(self) -> str | None:
        return cursor_key(self.table)

    def action_open(self) -> None:
        run_id = self.selected_run()
        if run_id:
            self.app.push_screen(RunDetailScreen(run_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()  # enter on the focused table

    def action_mark(self) -> None:
        """Space marks the run under the cursor for comparing (again: unmarks), and moves down."""
        run_id = self.selected_run()
        if not run_id:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self.table.update_cell(run_id, "id", self._id_cell(run_id))
        self._update_status()
        self.action_down()

    def action_compare(self) -> None:
        marked = self.marked or []
        if len(marked) < 2:
            self.notify("mark two runs or more with space, then press C", severity="warning")
            return
        self.app.push_screen(CompareScreen(marked))

    def action_sweep(self) -> None:
        """The sweep the run under the cursor is a trial of; the list of sweeps for a run of none."""
        run = self.shown.get(self.selected_run() or "")
        if not run or not run.sweep_id:
            self.action_sweeps()
            return
        self.app.push_screen(SweepScreen(run.sweep_id))

    def action_sweeps(self) -> None:
        self.app.push_screen(SweepsScreen())

    def action_down(self) -> None:
        table = self.table
        if table.row_count and table.cursor_row >= table.row_count - 1:
            if 0 <= self.query_state.offset and self.query_state.offset + PAGE < self.total:
                self._cursor_to = "top"
                self._set_query(offset=self.query_state.offset + PAGE)
            return
        table.move_cursor(row=table.cursor_row + 1)

    def action_up(self) -> None:
        table = self.table
        if table.cursor_row <= 0:
            if self.query_state.offset > 0:
                self._cursor_to = "bottom"
                self._set_query(offset=max(0, self.query_state.offset - PAGE))
            return
        table.move_cursor(row=table.cursor_row - 1)

    def action_next_page(self) -> None:
        if 0 <= self.query_state.offset and self.query_state.offset + PAGE < self.total:
            self._cursor_to = "top"
            self._set_query(offset=self.query_state.offset + PAGE)

    def action_previous_page(self) -> None:
        if self.query_state.offset:
            self._cursor_to = "top"
            self._set_query(offset=max(0, self.query_state.offset - PAGE))

    def action_newest(self) -> None:
        self._cursor_to = "top"
        self._set_query(offset=0)

    def action_oldest(self) -> None:
        self._cursor_to = "bottom"
        self._set_query(offset=-1)  # resolved to the last page by the worker

    def action_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        box.add_class("shown")
        box.focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._cursor_to = "top"
        self._set_query(text=event.value.strip(), offset=0)

    @on(Input.Submitted, "#runs-filter")
    def _filter_done(self) -> None:
        self.query_one("#runs-filter", Input).remove_class("shown")
        self.table.focus()

    def key_escape(self) -> None:
        box = self.query_one("#runs-filter", Input)
        if box.has_class("shown") or box.value:
            box.value = ""
            box.remove_class("shown")
            self.table.focus()

    def action_cycle_status(self) -> None:
        index = STATUSES.index(self.query_state.status)
        self._set_query(status=STATUSES[(index + 1) % len(STATUSES)], offset=0)

    def action_cycle_project(self) -> None:
        choices: list[str | None] = [None, *self.projects]
        index = choices.index(self.query_state.project) if self.query_state.project in choices else 0
        self._set_query(project=choices[(index + 1) % len(choices)], offset=0)

    def action_cycle_sort(self) -> None:
        index = SORTABLE.index(self.query_state.sort) if self.query_state.sort in SORTABLE else -1
        self._set_query(sort=SORTABLE[(index + 1) % len(SORTABLE)], offset=0)

    def action_reverse(self) -> None:
        self._set_query(descending=not self.query_state.descending, offset=0)

    def _filters(self) -> tuple[Any, ...]:
        q = self.query_state
        return (q.status, q.project, q.text)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-sort-keys")
    def load_sort_keys(self, filters: tuple[Any, ...]) -> None:
        """Every param and metric name of the runs the filter matches (not only the page's, whose order each
        sort changes): params A–Z, then metrics A–Z, read in SQL in this worker, once per filter until the
        history's count changes."""
        status, project, text = filters
        params, metrics = self.workbench.sort_value_names(status=status, project=project, text=text or None)
        self.post_message(SortKeysLoaded(filters, [f"param:{name}" for name in params]
                                         + [f"metric:{name}" for name in metrics]))

    def on_sort_keys_loaded(self, message: SortKeysLoaded) -> None:
        self._sort_keys = (message.filters, message.keys)
        if self._step_when_keys_load and message.filters == self._filters():
            self._step_when_keys_load = False
            self._step_value_sort(message.keys)

    def action_cycle_value_sort(self) -> None:
        """Sorts by the next param or metric of the filtered history (missing values last), then back to
        newest first; the list stays the same whatever order the page is in."""
        if self._sort_keys is None or self._sort_keys[0] != self._filters():
            self._step_when_keys_load = True
            self.load_sort_keys(self._filters())
            return
        self._step_value_sort(self._sort_keys[1])

    def _step_value_sort(self, choices: list[str]) -> None:
        if not choices:
            self.notify("no params or metrics in these runs to sort by")
            return
        current = self.query_state.sort
        index = choices.index(current) + 1 if current in choices else 0
        if index == len(choices):
            self._set_query(sort="created", descending=True, offset=0)
        else:
            self._set_query(sort=choices[index], offset=0)

    def _selected_status(self, run_id: str) -> str | None:
        run = self.shown.get(run_id)
        return run.status if run else None

    def action_cancel_run(self) -> None:
        run_id = self.selected_run()
        if run_id:
            self.confirm_cancel(run_id, self._selected_status(run_id))

    def action_delete_run(self) -> None:
        run_id = self.selected_run()
        if run_id:
            self.confirm_delete(run_id, self._selected_status(run_id))

    def selected_row(self) -> Any | None:
        return self.shown.get(self.selected_run() or "")

    def on_run_removed(self, message: RunRemoved) -> None:
        self.notify(f"run {message.run_id} deleted")
        if message.run_id in self.table.rows:
            self.table.remove_row(message.run_id)
            self.shown.pop(message.run_id, None)
            self.total = max(0, self.total - 1)
            self._update_status()
        self.reload()  # the page fills up again from the next one

    def action_rerun(self) -> None:
        run_id = self.selected_run()
        if run_id:
            self.app.run_action_on_run("rerun", run_id)  # type: ignore[attr-defined]

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("Open run", "details, logs and charts of the selected run", self.action_open),
            ("Follow logs", "open the selected run on its live log", self.action_open),
            ("Cancel run", "stop the selected run (asks first)", self.action_cancel_run),
            ("Delete run", "remove the selected run with its logs, metrics and artifacts (asks first)",
             self.action_delete_run),
            ("Rerun", "an identical run from the stored snapshot and image", self.action_rerun),
            *self.session_commands("the selected"),
            ("Filter runs", "filter by text", self.action_filter),
            ("Cycle status filter", "all, running, queued, succeeded, …", self.action_cycle_status),
            ("Cycle project filter", "all projects, then each", self.action_cycle_project),
            ("Sort by next column", "id, status, project, machine, started, duration", self.action_cycle_sort),
            ("Sort by param or metric", "the next param or metric of the filtered runs; missing values last",
             self.action_cycle_value_sort),
            ("Jump to oldest run", "the last page of the history", self.action_oldest),
            ("Open sweep of trial", "the selected trial's sweep: trials by objective, a scatter per param",
             self.action_sweep),
            ("Sweeps", "every sweep with its progress, best trial and cost", self.action_sweeps),
            ("Compare marked runs", "params that differ, metrics and overlaid curves (mark with space)",
             self.action_compare),
        ]
