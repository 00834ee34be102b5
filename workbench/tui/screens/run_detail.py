"""One run: overview (params, reproducibility record, artifacts, events), a live log tail with follow
mode, a chart per metric, and for a notebook run its executed notebook, refreshed every second while the
run goes."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.actions import SkipAction
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.strip import Strip
from textual.widgets import Log, Static, TabbedContent, TabPane

from workbench.errors import NotFound
from workbench.formatting import ago, duration, short_value, shown_status, size
from workbench.services.log_tail import LOG_TAIL_LINES, LogChunk
from workbench.services.spec_text import check_texts
from workbench.tui.cells import escape, status_markup
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.screens.register_model import RegisterModelScreen
from workbench.tui.screens.run_actions import ACTIVE, RunActions, RunList, RunRemoved
from workbench.tui.screens.session_actions import SessionActions
from workbench.tui.widgets.metric_chart import MetricChart
from workbench.tui.widgets.notebook_view import NotebookContent, NotebookView, lay_out, read_notebook

MAX_LOG_LINES = LOG_TAIL_LINES  # lines the Log keeps (and the most one refresh hands it)
LOG_BATCH = 500  # lines per Log.write_lines call; the event loop runs between batches
MAX_PROGRESS_CHARS = 1000  # the live progress line is one row: the rest could never show
CHART_BUCKETS = 240
TABS = ("overview", "logs", "metrics")  # and "notebook", last, for a notebook run


class DetailLoaded(Message):
    def __init__(self, start: int, run: Any, log: LogChunk, series: dict[str, Any],
                 progress: str | None = None) -> None:
        super().__init__()
        self.start, self.run, self.log, self.series = start, run, log, series
        self.progress = progress  # the line the live run is redrawing now (its tqdm bar), None when none


class RunGone(Message):
    pass


class NotebookLoaded(Message):
    def __init__(self, content: NotebookContent | None, lines: list[Strip], width: int, final: bool) -> None:
        super().__init__()
        self.content = content  # None: the file is as last drawn
        self.lines, self.width = lines, width  # the content laid out at that width
        self.final = final  # read after the run ended: it changes no more


class PaneScroll(VerticalScroll):
    """A tab's scrolling content, focused when its tab shows, so the movement keys scroll it at once."""

    BINDINGS = [
        Binding("j,down", "scroll_down", "Scroll down", show=False, id="detail.scroll_down"),
        Binding("k,up", "scroll_up", "Scroll up", show=False, id="detail.scroll_up"),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False, id="detail.page_down"),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False, id="detail.page_up"),
        Binding("home,g", "scroll_home", "Top", show=False, id="detail.top"),
        Binding("end,G", "scroll_end", "Bottom", show=False, id="detail.bottom"),
    ]


class PaneLog(Log):
    """The Logs tab's log, focused when its tab shows: the same movement keys as the other panes. ←/→ scroll
    it sideways only when a line is wider than the pane; else they reach the screen and switch tabs."""

    BINDINGS = PaneScroll.BINDINGS

    def action_scroll_left(self) -> None:
        if self.max_scroll_x <= 0:
            raise SkipAction()
        super().action_scroll_left()

    def action_scroll_right(self) -> None:
        if self.max_scroll_x <= 0:
            raise SkipAction()
        super().action_scroll_right()


class NotebookPane(NotebookView):
    """The Notebook tab's view: the same movement keys as the other panes."""

    BINDINGS = PaneScroll.BINDINGS


class RunDetailScreen(RunActions, SessionActions, BaseScreen):
    MODE = "runs"
    REFRESH_SECONDS = 1.0
    AUTO_FOCUS = "#overview-scroll"
    BINDINGS = [
        Binding("escape", "back", "Back", id="detail.back"),
        Binding("h,left", "previous_tab", "Prev tab", show=False, id="detail.previous_tab"),
        Binding("l,right", "next_tab", "Next tab", show=False, id="detail.next_tab"),
        Binding("o", "tab('overview')", "Overview", show=False, id="detail.overview"),
        Binding("L", "tab('logs')", "Logs", show=False, id="detail.logs"),
        Binding("m", "tab('metrics')", "Metrics", show=False, id="detail.metrics"),
        Binding("n", "tab('notebook')", "Notebook", show=False, id="detail.notebook"),
        Binding("F", "toggle_follow", "Follow", id="detail.follow"),
        Binding("c", "cancel_run", "Cancel", id="detail.cancel"),
        Binding("d,delete", "delete_run", "Delete", id="detail.delete"),
        Binding("R", "rerun", "Rerun", id="detail.rerun"),
        Binding("w", "sweep", "Its sweep", show=False, id="detail.sweep"),
        Binding("M", "register_model", "Register model", show=False, id="detail.register_model"),
        # a JupyterLab session's (`o` is the overview here)
        Binding("u", "session_url", "Session URL", show=False, id="detail.session_url"),
        Binding("s,x", "stop_session", "Stop session", show=False, id="detail.stop_session"),
    ]
    DEFAULT_CSS = """
    RunDetailScreen #detail-title { height: 1; padding: 0 1; background: $boost; }
    RunDetailScreen #detail-where { height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap;
                                    text-overflow: ellipsis; display: none; }
    RunDetailScreen #detail-unreachable { height: auto; padding: 0 1; background: $warning 20%;
                                          color: $text-warning; display: none; }
    RunDetailScreen TabbedContent { height: 1fr; }
    RunDetailScreen #overview { padding: 0 1; }
    RunDetailScreen Log { height: 1fr; }
    RunDetailScreen .progress {
        height: 1; padding: 0 1; color: $accent; text-wrap: nowrap; text-overflow: ellipsis; display: none;
    }
    RunDetailScreen #overview-progress { padding: 0; }  /* the overview pane has its own padding */
    """
    FOCUS = {"overview": "#overview-scroll", "logs": "#log", "metrics": "#charts", "notebook": "#notebook-view"}

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.log_offset = 0
        self.follow = True
        self.charts: dict[str, MetricChart] = {}
        self.run: Any = None  # the facade's RunDetail, as last loaded
        self._pending_log: deque[str] = deque(maxlen=MAX_LOG_LINES)  # read, not yet written to the Log
        self._draining = False
        self._deleting = False  # the user confirmed a delete: its RunGone is expected
        self._said_deleted = False
        self.tabs = TABS  # the notebook's tab joins them once the run is known to be a notebook run
        self._notebook_signature: tuple[int, int] | None = None  # the file as last drawn
        self._notebook_final = False  # read after the run ended: it changes no more
        self._notebook_loading = False  # a read is in flight: the next refresh starts none
        self._notebook_view: NotebookView | None = None  # the tab's view, once the run is known to have one

    def compose_body(self) -> ComposeResult:
        yield Static(f"run {self.run_id}", id="detail-title")
        yield Static("", id="detail-where")  # a remote run: where its files live
        yield Static("", id="detail-unreachable")  # while its host does not answer
        with TabbedContent(initial="overview"):
            with TabPane("Overview", id="overview"):
                yield Static("", id="overview-progress", classes="progress")
                yield PaneScroll(Static("loading…", id="overview-text"), id="overview-scroll")
            with TabPane("Logs", id="logs"):
                yield Static("", id="progress", classes="progress")  # the line the run redraws (a tqdm bar)
                yield PaneLog(max_lines=MAX_LOG_LINES, auto_scroll=True, id="log")
            with TabPane("Metrics", id="metrics"):
                yield PaneScroll(Static("no metrics yet", id="no-metrics"), id="charts")

    def on_mount(self) -> None:  # BaseScreen's on_mount runs too (Textual calls each class's handler)
        """Opened over the Runs screen (Enter there, or the app after a launch): that screen's cursor goes to
        this run, so going back leaves the run selected."""
        stack = self.app.screen_stack
        below = stack[stack.index(self) - 1] if self in stack and stack.index(self) > 0 else None
        if isinstance(below, RunList):
            below.select(self.run_id)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """The shown tab's content takes the focus: j/k, arrows and page keys scroll it without a Tab first."""
        target = self.FOCUS.get(event.pane.id or "")
        if target:
            self.query_one(target).focus()

    def reload(self) -> None:
        self.load(self.log_offset)

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-detail")
    def load(self, log_offset: int) -> None:
        wb = self.workbench
        try:
            run = wb.show_record(self.run_id)
            # A live run nobody follows is ingested here; one a follower owns is only read (no ingestor).
            if run.status in ACTIVE and not wb.is_followed(run.id):
                wb.refresh_run(self.run_id)
                run = wb.show_record(self.run_id)
        except NotFound:
            self.post_message(RunGone())
            return
        log = wb.run_log_tail(run.id, log_offset,
                              max_lines=MAX_LOG_LINES - 1)  # room for the note of what was passed over
        series = wb.metric_series(run, CHART_BUCKETS)
        try:
            progress = wb.progress_line(run.id) if run.status in ACTIVE else None
        except NotFound:  # removed this instant: the next refresh says so
            progress = None
        self.post_message(DetailLoaded(log_offset, run, log, series, progress))

    def on_run_gone(self) -> None:
        if not self._deleting:
            self.notify(f"run {self.run_id} no longer exists (removed?)", severity="warning")
        self._close()

    def on_run_removed(self, message: RunRemoved) -> None:
        self._close()

    def deleting(self, run_id: str) -> None:
        self._deleting = True

    def _close(self) -> None:
        if self._deleting and not self._said_deleted:  # once, whichever of RunGone and RunRemoved comes first
            self._said_deleted = True
            self.notify(f"run {self.run_id} deleted")
        if self.is_current:  # under a dialog it closes when shown again (its next load finds no run)
            self.app.pop_screen()

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        if message.start != self.log_offset:
            return  # a slower load from an older offset: its lines are already shown
        run = self.run = message.run
        now = self.clock()
        unreachable = shown_status(run) == "unreachable"
        status = "[bold yellow]running?[/]" if unreachable else status_markup(run.status)
        self.query_one("#detail-title", Static).update(
            f"[b]{run.id}[/b]  {status}  {escape(run.project)}/{escape(run.experiment)}  "
            f"on {escape(run.machine)}  {duration(run, now)}"
            + (f"  — {escape(run.status_reason)}" if run.status_reason and not unreachable else ""))
        where = self.query_one("#detail-where", Static)
        where.update(f"files on {escape(run.host_run_dir)}" if run.host_run_dir else "")
        where.display = bool(run.host_run_dir)
        alert = self.query_one("#detail-unreachable", Static)
        # The run goes on there as far as is known; the reconciler keeps asking in the background.
        alert.update(f"[b]{escape(run.status_reason)}[/b] — shown as last seen" if unreachable else "")
        alert.display = unreachable
        self.query_one("#overview-text", Static).update(self._overview(run, now))
        log = message.log
        if log.skipped_bytes:
            self._pending_log.append(f"… {size(log.skipped_bytes)} of output not shown here "
                                     f"(`workbench runs logs {run.id}` prints it all) …")
        if log.lines:
            self._pending_log.extend(log.lines)
        self.log_offset = log.offset
        self._drain_log()
        self._update_charts(message.series)
        self._show_progress(message.progress)
        if (run.spec or {}).get("notebook"):
            self._refresh_notebook(run)

    # the Notebook tab -----------------------------------------------------------------------------
    def _refresh_notebook(self, run: Any) -> None:
        """Adds the tab the first time, then reads the notebook again while the run goes (a local run's
        file grows a cell at a time; an unchanged file is not drawn again) and after it ends, until the file
        is there (a remote run's copy comes back as it ends)."""
        if "notebook" not in self.tabs:
            self.tabs = TABS + ("notebook",)
            self._notebook_view = NotebookPane(NotebookContent([], message="loading…"), id="notebook-view")
            self.query_one(TabbedContent).add_pane(TabPane("Notebook", self._notebook_view, id="notebook"))
        if not self._notebook_final and not self._notebook_loading:
            self._notebook_loading = True
            self.load_notebook(self._notebook_signature, run.status in ACTIVE, self._notebook_view.layout_width)

    @work(thread=True, exit_on_error=False, group="run-detail-notebook")
    def load_notebook(self, seen: tuple[int, int] | None, running: bool, width: int) -> None:
        try:
            content = read_notebook(self.workbench, self.run_id, seen, running)
            lines = lay_out(content, width) if content is not None else []
        except BaseException:
            self.post_message(NotebookLoaded(None, [], width, final=False))  # so that the next refresh reads
            raise
        found = content is None or content.signature is not None
        self.post_message(NotebookLoaded(content, lines, width, final=not running and found))

    def on_notebook_loaded(self, message: NotebookLoaded) -> None:
        self._notebook_loading = False
        if message.content is not None:
            self._notebook_signature = message.content.signature
            self._notebook_view.show(message.content, message.lines, message.width)
        self._notebook_final = self._notebook_final or message.final

    def _show_progress(self, line: str | None) -> None:
        """The run's live progress line above the log and atop the overview, one row each (cut with `…` at
        the width, never wrapped); hidden when the run redraws nothing."""
        text = escape(line[:MAX_PROGRESS_CHARS]) if line else ""
        for static in self.query(".progress").results(Static):
            static.update(text)
            static.display = bool(text)

    def _drain_log(self) -> None:
        if not self._draining:  # else a batch is due already; it takes these lines too
            self._write_log_batch()

    def _write_log_batch(self) -> None:
        """Writes pending lines in batches, one per turn of the event loop, so keys are answered between."""
        pending = self._pending_log
        batch = [pending.popleft() for _ in range(min(LOG_BATCH, len(pending)))]
        if batch:
            self.query_one("#log", Log).write_lines(batch)
        self._draining = bool(pending)
        if pending:
            self.call_later(self._write_log_batch)

    def _update_charts(self, series: dict[str, Any]) -> None:
        container = self.query_one("#charts", PaneScroll)
        if series:
            for placeholder in self.query("#no-metrics"):
                placeholder.remove()
        for name, data in series.items():
            chart = self.charts.get(name)
            if chart is None:
                chart = self.charts[name] = MetricChart(name)
                container.mount(chart)
            chart.set_data(data)

    @staticmethod
    def _overview(run: Any, now: float) -> str:
        lines = ["[b]Params[/b]"]
        lines += [escape(f"  {k} = {json.dumps(v)}") for k, v in run.params.items()] or ["  (none)"]
        if run.summary:
            lines.append("[b]Last metric values[/b]")
            lines += [escape(f"  {k} = {short_value(v)}") for k, v in run.summary.items()]
        declared = (run.spec or {}).get("checks") or []
        if run.status != "succeeded" and (declared or run.checks):
            # Verdicts are for runs that succeeded: partial metrics of a stopped run pass nothing.
            why = "evaluated when the run succeeds" if run.status in ACTIVE else \
                "not evaluated (the run did not succeed)"
            lines.append(f"[b]checks:[/b] {why}")
            lines += [escape(f"  {text}") for text in check_texts(declared, [c.expression for c in run.checks])]
        elif run.checks:
            verdict = run.verdict or "?"
            lines.append(f"[b]Checks[/b] [{'green' if verdict == 'pass' else 'red'}]{verdict}[/]")
            lines += [escape(f"  {'pass' if c.passed else 'FAIL'}  {c.expression:<22} value="
                             f"{'missing' if c.value is None else short_value(c.value)}") for c in run.checks]
        lines.append("[b]Reproducibility[/b]")
        record = [
            ("argv", " ".join(json.dumps(a) if " " in a or not a else a for a in run.argv)),
            ("image", f"{run.image or '-'} {(run.image_id or '')[:19]}"),
            ("snapshot", (run.snapshot or "-")[:16]),
            ("git", (run.git_commit or "-")[:12] + (" (dirty)" if run.git_dirty else "")),
            ("executor", run.executor), ("machine", run.machine),
            *([("slurm job", str((run.handle or {}).get("job")))] if (run.handle or {}).get("job") else []),
            *([("files on", run.host_run_dir)] if run.host_run_dir else []),
            ("gpus", ", ".join(run.gpu_uuids or []) or "none"),
            *([("placed", (run.placement or {}).get("reason") or "-")] if run.placement else []),
            *([("cost", f"${run.cost:.2f} (${run.hourly_cost:.2f}/h × {run.gpu_share or 1:.0%} of "
                        f"{run.machine})")] if run.cost is not None and run.hourly_cost else []),
            ("created", ago(run.created_at, now)), ("exit code", str(run.exit_code)),
            ("rerun of", run.rerun_of or "-"),
            *([("sweep", f"{run.sweep_id} trial {run.trial + 1} (w opens it)")] if run.sweep_id else []),
        ]
        lines += [escape(f"  {k:<10} {v}") for k, v in record]
        env = run.env or {}
        if env:
            lines.append("[b]Environment[/b] (secret-looking names redacted)")
            lines += [escape(f"  {k}={v}") for k, v in sorted(env.items())]
        if run.artifacts:
            lines.append("[b]Artifacts[/b]")
            lines += [escape(f"  {a.path:<24} {size(a.size):>10}  sha256:{a.sha256[:12]}")
                      for a in run.artifacts]
        if run.bad_metric_lines or run.bad_metric_values:
            lines.append(f"[yellow]skipped {run.bad_metric_lines} non-JSON metric line(s), "
                         f"{run.bad_metric_values} non-numeric value(s)[/]")
        if run.events:
            lines.append("[b]Events[/b]")
            lines += [escape(f"  {ago(e.ts, now):>9}  {e.kind:<9} {e.message}") for e in run.events[-8:]]
        return "\n".join(lines)

    # actions --------------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        if tab not in self.tabs:
            self.notify(f"run {self.run_id} ran a command: it has no notebook" if self.run else "loading…")
            return
        self.query_one(TabbedContent).active = tab

    def _step_tab(self, delta: int) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = self.tabs[(self.tabs.index(tabs.active) + delta) % len(self.tabs)]

    def action_next_tab(self) -> None:
        self._step_tab(1)

    def action_previous_tab(self) -> None:
        self._step_tab(-1)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one("#log", Log)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self.notify(f"log follow {'on' if self.follow else 'off'}")

    def _status(self) -> str | None:
        return self.run.status if self.run else None

    def action_cancel_run(self) -> None:
        self.confirm_cancel(self.run_id, self._status())

    def action_delete_run(self) -> None:
        self.confirm_delete(self.run_id, self._status())

    def selected_row(self) -> Any | None:
        return self.run

    def action_rerun(self) -> None:
        self.app.run_action_on_run("rerun", self.run_id)  # type: ignore[attr-defined]

    def action_register_model(self) -> None:
        """Registers one of the run's artifacts as the next version of a model (a form picks which)."""
        run = self.run
        if run is None:
            return
        artifacts = [a.path for a in run.artifacts or [] if not a.link]
        if not artifacts:
            self.notify(f"run {self.run_id} has no artifacts to register", severity="warning")
            return
        gate = (f"run {self.run_id} {run.status}" if run.status != "succeeded" else
                f"run {self.run_id} failed its checks" if run.verdict == "fail" else None)

        def answered(answer: dict | None) -> None:
            if answer:
                self.app.register_model(self.run_id, answer["artifact"], answer["name"],  # type: ignore[attr-defined]
                                        answer["force"])
        self.app.push_screen(RegisterModelScreen(self.run_id, artifacts, run.project, gate), answered)

    def action_sweep(self) -> None:
        sweep_id = self.run.sweep_id if self.run else None
        if not sweep_id:
            self.notify(f"run {self.run_id} is not a sweep's trial")
            return
        self.app.open_sweep(sweep_id)  # type: ignore[attr-defined]

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("Follow logs", "show the live log tail", lambda: self.action_tab("logs")),
            ("Toggle log follow", "keep the newest line in view, or stop scrolling", self.action_toggle_follow),
            ("Show metrics", "a chart per metric", lambda: self.action_tab("metrics")),
            ("Show notebook", "a notebook run's executed notebook, with its outputs", lambda: self.action_tab("notebook")),
            ("Cancel run", "stop this run (asks first)", self.action_cancel_run),
            ("Delete run", "remove this run with its logs, metrics and artifacts (asks first)", self.action_delete_run),
            ("Rerun", "an identical run from the stored snapshot and image", self.action_rerun),
            *self.session_commands("this"),
            ("Register model", "one of this run's artifacts as the next version of a model", self.action_register_model),
            ("Open its sweep", "the sweep this run is a trial of", self.action_sweep),
            ("Back to runs", "the run history", self.action_back),
        ]
