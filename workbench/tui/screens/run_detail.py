"""One run: overview (params, reproducibility record, artifacts, events), a live log tail with follow
mode, and a chart per metric, refreshed every second while the run goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Log, Static, TabbedContent, TabPane

from workbench.textsafe import log_text as safe_log_line
from workbench.tui.formatting import ago, duration, escape, short_value, size, status_markup
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.widgets.metric_chart import MetricChart

LOG_TAIL_BYTES = 256 * 1024
MAX_LOG_LINES = 5000
CHART_BUCKETS = 240
TABS = ("overview", "logs", "metrics")


class DetailLoaded(Message):
    def __init__(self, start: int | None, run: dict[str, Any], log_text: str, log_offset: int,
                 series: dict[str, Any]) -> None:
        super().__init__()
        self.start, self.run, self.log_text, self.log_offset, self.series = start, run, log_text, log_offset, series


class RunGone(Message):
    pass


class RunDetailScreen(BaseScreen):
    MODE = "runs"
    REFRESH_SECONDS = 1.0
    BINDINGS = [
        Binding("escape", "back", "Back", id="detail.back"),
        Binding("h,left", "previous_tab", "Prev tab", show=False, id="detail.previous_tab"),
        Binding("l,right", "next_tab", "Next tab", show=False, id="detail.next_tab"),
        Binding("o", "tab('overview')", "Overview", id="detail.overview"),
        Binding("L", "tab('logs')", "Logs", id="detail.logs"),
        Binding("m", "tab('metrics')", "Metrics", id="detail.metrics"),
        Binding("F", "toggle_follow", "Follow", id="detail.follow"),
        Binding("c", "cancel_run", "Cancel", id="detail.cancel"),
        Binding("R", "rerun", "Rerun", id="detail.rerun"),
    ]
    DEFAULT_CSS = """
    RunDetailScreen #detail-title { height: 1; padding: 0 1; background: $boost; }
    RunDetailScreen TabbedContent { height: 1fr; }
    RunDetailScreen #overview { padding: 0 1; }
    RunDetailScreen Log { height: 1fr; }
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.log_offset: int | None = None
        self.follow = True
        self.charts: dict[str, MetricChart] = {}
        self.run: dict[str, Any] | None = None

    def compose_body(self) -> ComposeResult:
        yield Static(f"run {self.run_id}", id="detail-title")
        with TabbedContent(initial="overview"):
            with TabPane("Overview", id="overview"):
                yield VerticalScroll(Static("loading…", id="overview-text"))
            with TabPane("Logs", id="logs"):
                yield Log(max_lines=MAX_LOG_LINES, auto_scroll=True, id="log")
            with TabPane("Metrics", id="metrics"):
                yield VerticalScroll(Static("no metrics yet", id="no-metrics"), id="charts")

    def reload(self) -> None:
        self.load(self.log_offset)

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-detail")
    def load(self, log_offset: int | None) -> None:
        from workbench.errors import NotFound

        wb = self.workbench
        try:
            wb.refresh_run(self.run_id)
            run = wb.show_record(self.run_id)
        except NotFound:
            self.post_message(RunGone())
            return
        path = Path(wb.dirs.run_dir(run["id"])) / "logs.txt"
        text, offset = "", log_offset or 0
        try:
            with open(path, "rb") as fh:
                end = fh.seek(0, 2)
                if log_offset is None:  # first look: the tail only
                    offset = max(0, end - LOG_TAIL_BYTES)
                fh.seek(offset)
                data = fh.read(end - offset)
            if log_offset is None and offset:
                data = data[data.find(b"\n") + 1:]  # start on a whole line
                offset = end - len(data)
            cut = data.rfind(b"\n") + 1
            text = data[:cut].decode("utf-8", errors="replace")
            offset += cut
        except FileNotFoundError:
            pass
        series = {name: wb.store.metric_series(run["seq"], name, CHART_BUCKETS)
                  for name in wb.store.metric_names(run["seq"])}
        self.post_message(DetailLoaded(log_offset, run, text, offset, series))

    def on_run_gone(self) -> None:
        self.notify(f"run {self.run_id} no longer exists (removed?)", severity="warning")
        self.app.pop_screen()

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        from workbench.execution.logformat import split_line

        if message.start != self.log_offset:
            return  # a slower load from an older offset: its lines are already shown
        run = self.run = message.run
        now = self.clock()
        self.query_one("#detail-title", Static).update(
            f"[b]{run['id']}[/b]  {status_markup(run['status'])}  {escape(run['project'])}/{escape(run['experiment'])}  "
            f"on {escape(run['machine'])}  {duration(run, now)}"
            + (f"  — {escape(run['status_reason'])}" if run.get("status_reason") else ""))
        self.query_one("#overview-text", Static).update(self._overview(run, now))
        if message.log_text:
            log = self.query_one("#log", Log)
            log.write_lines([safe_log_line(split_line(line)[2]) for line in message.log_text.splitlines()])
        self.log_offset = message.log_offset
        self._update_charts(message.series)

    def _update_charts(self, series: dict[str, Any]) -> None:
        container = self.query_one("#charts", VerticalScroll)
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
    def _overview(run: dict[str, Any], now: float) -> str:
        lines = ["[b]Params[/b]"]
        lines += [escape(f"  {k} = {json.dumps(v)}") for k, v in run["params"].items()] or ["  (none)"]
        if run.get("summary"):
            lines.append("[b]Last metric values[/b]")
            lines += [escape(f"  {k} = {short_value(v)}") for k, v in run["summary"].items()]
        if run.get("checks"):
            verdict = run.get("verdict") or "?"
            lines.append(f"[b]Checks[/b] [{'green' if verdict == 'pass' else 'red'}]{verdict}[/]")
            lines += [escape(f"  {'pass' if c['passed'] else 'FAIL'}  {c['expression']:<22} value="
                             f"{'missing' if c['value'] is None else short_value(c['value'])}") for c in run["checks"]]
        lines.append("[b]Reproducibility[/b]")
        record = [
            ("argv", " ".join(json.dumps(a) if " " in a or not a else a for a in run["argv"])),
            ("image", f"{run.get('image') or '-'} {(run.get('image_id') or '')[:19]}"),
            ("snapshot", (run.get("snapshot") or "-")[:16]),
            ("git", (run.get("git_commit") or "-")[:12] + (" (dirty)" if run.get("git_dirty") else "")),
            ("executor", run["executor"]), ("machine", run["machine"]),
            ("gpus", ", ".join(run.get("gpu_uuids") or []) or "none"),
            ("created", ago(run.get("created_at"), now)), ("exit code", str(run.get("exit_code"))),
            ("rerun of", run.get("rerun_of") or "-"),
        ]
        lines += [escape(f"  {k:<10} {v}") for k, v in record]
        env = run.get("env") or {}
        if env:
            lines.append("[b]Environment[/b] (secret-looking names redacted)")
            lines += [escape(f"  {k}={v}") for k, v in sorted(env.items())]
        if run.get("artifacts"):
            lines.append("[b]Artifacts[/b]")
            lines += [escape(f"  {a['path']:<24} {size(a['size']):>10}  sha256:{a['sha256'][:12]}")
                      for a in run["artifacts"]]
        if run.get("bad_metric_lines") or run.get("bad_metric_values"):
            lines.append(f"[yellow]skipped {run['bad_metric_lines']} non-JSON metric line(s), "
                         f"{run['bad_metric_values']} non-numeric value(s)[/]")
        if run.get("events"):
            lines.append("[b]Events[/b]")
            lines += [escape(f"  {ago(e['ts'], now):>9}  {e['kind']:<9} {e['message']}") for e in run["events"][-8:]]
        return "\n".join(lines)

    # actions --------------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def _step_tab(self, delta: int) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + delta) % len(TABS)]

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

    def action_cancel_run(self) -> None:
        self.app.run_action_on_run("cancel", self.run_id)  # type: ignore[attr-defined]

    def action_rerun(self) -> None:
        self.app.run_action_on_run("rerun", self.run_id)  # type: ignore[attr-defined]

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("Follow logs", "show the live log tail", lambda: self.action_tab("logs")),
            ("Toggle log follow", "keep the newest line in view, or stop scrolling", self.action_toggle_follow),
            ("Show metrics", "a chart per metric", lambda: self.action_tab("metrics")),
            ("Cancel run", "stop this run", self.action_cancel_run),
            ("Rerun", "an identical run from the stored snapshot and image", self.action_rerun),
            ("Back to runs", "the run history", self.action_back),
        ]
