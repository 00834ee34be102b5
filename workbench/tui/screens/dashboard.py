"""At a glance: runs going now (with live progress), the queue, recent results, this machine."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from workbench.errors import NotFound
from workbench.formatting import ago, duration, money, pairs, size
from workbench.tui.cells import cell, escape, project_cell, status_cell
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.screens.session_actions import SessionActions
from workbench.tui.widgets.fitted_table import FittedTable

MAX_PROGRESS_CHARS = 1000  # of a run's live progress line: a cell shows far fewer
CI_LINES = 3  # followed branches shown; the rest are counted


class DashboardLoaded(Message):
    def __init__(self, data: Any, machine: Any, fleet: dict[str, dict[str, Any]],
                 progress: dict[str, str] | None = None, sessions: dict[str, Any] | None = None,
                 ci: list[tuple[str, Any]] | None = None) -> None:
        super().__init__()
        self.data, self.machine, self.fleet = data, machine, fleet
        self.ci = ci or []  # (project name, the facade's CiBranch) of each branch wanted followed
        self.progress = progress or {}  # run id -> the line it is redrawing now (its tqdm bar)
        self.sessions = sessions or {}  # the JupyterLab sessions among them (the facade's Session) by id


def fleet_summary(fleet: dict[str, dict[str, Any]]) -> str:
    """One line per SSH host, from the same live samples as the Machines screen."""
    lines = []
    for name, live in sorted(fleet.items()):
        gpus = live["gpus"]
        utils = [g.utilization for g in gpus if g.utilization is not None]
        busy = f" · util {sum(utils) / len(utils):.0f}% avg" if utils else ""
        kind = "CPU only" if live["cpu_only"] else f"{len(gpus)} GPU(s)"
        colour = "green" if live["state"] == "connected" else "yellow" if "connect" in live["state"] else "red"
        lines.append(f"[b]{escape(name)}[/b]  [{colour}]●[/] {live['state']} · {kind}{busy}")
    return "\n".join(lines)


def ci_summary(branches: list[tuple[str, Any]], accent: str) -> str:
    """One line per followed branch (the first CI_LINES, then how many more): its follower and last verdict."""
    from workbench.tui.screens.ci_commits import verdict_markup

    lines = []
    for project, b in branches[:CI_LINES]:
        state = f"[green]●[/] following (pid {b.pid})" if b.pid else "[yellow]●[/] no follower running"
        last = f" · last {verdict_markup(b.last_verdict, accent)} {escape((b.last_sha or '')[:8])}" \
            if b.last_verdict else " · no verdict yet"
        lines.append(f"[b]CI[/b] {escape(project)} · {escape(b.branch)}  {state}{last}")
    if len(branches) > CI_LINES:
        lines.append(f"   +{len(branches) - CI_LINES} more followed branch(es)")
    return "\n".join(lines)


def session_gpus(session: Any) -> str:
    """What a session holds, where a run shows its metric points."""
    gpus = len(session.gpu_uuids or [])
    return f"{gpus} GPU{'s' if gpus != 1 else ''}" if gpus else "no GPU"


def session_where(session: Any, now: float) -> str:
    """Its cost so far (first: it stays when the column narrows) and its machine, where a run shows its latest
    metrics."""
    cost = session.cost_at(now)
    return f"on {session.machine}" if cost is None else f"{money(cost)} so far on {session.machine}"


def machine_summary(sample: Any, holders: dict[tuple[str, str], str] | None = None) -> str:
    """This workstation in a few lines; `holders` ((machine, GPU uuid) -> run id) says which run holds a GPU."""
    memory = (f"RAM {size(sample.memory_used)} / {size(sample.memory_total)}"
              if sample.memory_total else "RAM n/a")
    lines = [f"[b]local[/b]  [green]●[/] this workstation · {sample.cpus} CPUs · load "
             f"{sample.load[0]:.2f} {sample.load[1]:.2f} {sample.load[2]:.2f} · {memory} · "
             f"disk {size(sample.disk_used)} / {size(sample.disk_total)}"]
    if sample.gpus.gpus:
        for gpu in sample.gpus.gpus:
            util = "n/a" if gpu.utilization is None else f"{gpu.utilization:.0f}%"
            mem = "n/a" if gpu.memory_total is None else f"{size(gpu.memory_used)} / {size(gpu.memory_total)}"
            lines.append(f"  GPU{gpu.index} {escape(gpu.name)} · util {util} · mem {mem} · "
                         f"{len(gpu.processes or [])} process(es)")
            holder = (holders or {}).get(("local", gpu.uuid))
            if holder:
                lines.append(f"        [b]held by run {escape(holder)}[/b]")
    else:
        lines.append(f"  no GPUs ({escape(sample.gpus.error or 'none found')})")
    return "\n".join(lines)


class DashboardScreen(SessionActions, BaseScreen):
    MODE = "dashboard"
    REFRESH_SECONDS = 1.0  # a live run's progress line shows within a second
    BINDINGS = [
        Binding("enter", "open", "Open run", id="dashboard.open"),
        Binding("tab", "app.focus_next", "Next panel", show=False, id="dashboard.next"),
        # the keys here; `u` and `x` as on the Runs screen, where `o` and `s` sort
        Binding("o,u", "session_url", "Session URL", show=False, id="dashboard.session_url"),
        Binding("s,x", "stop_session", "Stop session", show=False, id="dashboard.stop_session"),
    ]
    DEFAULT_CSS = """
    DashboardScreen .panel-title { height: 1; padding: 0 1; background: $boost; color: $accent; }
    DashboardScreen #live { height: 1fr; }
    DashboardScreen #recent { height: 1fr; }
    DashboardScreen #machine { height: auto; max-height: 6; padding: 0 1; }
    DashboardScreen #ci-branches { height: auto; padding: 0 1; display: none; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, Any] = {}  # the runs shown (the facade's RunRow) by id, as last loaded

    def compose_body(self) -> ComposeResult:
        with Vertical():
            yield Static("Running", id="live-title", classes="panel-title")
            # at 80 columns every column shows; a wider terminal widens names and metrics (metrics most)
            yield FittedTable((("id", 8, 0), ("project/experiment", 18, 1), ("elapsed", 8, 0),
                               ("points", 10, 0), ("latest", 16, 2)), cursor_type="row", id="live")
            yield Static("Recent results", classes="panel-title")
            yield FittedTable((("id", 8, 0), ("status", 9, 0), ("project/experiment", 18, 1), ("metrics", 16, 2),
                               ("finished", 8, 0)), cursor_type="row", id="recent")
            yield Static("", id="ci-branches")  # shown only while a branch is followed
            yield Static("Machines", classes="panel-title")
            yield Static("sampling…", id="machine")

    def reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="dashboard")
    def load(self) -> None:
        wb = self.workbench
        fleet = self.app.fleet  # type: ignore[attr-defined]
        data = wb.dashboard()
        progress = {}
        for run in data.running + data.queued:
            try:
                line = wb.progress_line(run.id)
            except NotFound:  # removed since the list was read
                continue
            if line:
                progress[run.id] = line[:MAX_PROGRESS_CHARS]
        sessions = ({s.id: s for s in wb.sessions()}
                    if any(r.kind == "session" for r in data.running + data.queued) else {})
        self.post_message(DashboardLoaded(data, wb.local_machine(), fleet.snapshot() if fleet else {}, progress,
                                          sessions, self._followed(wb)))

    @staticmethod
    def _followed(wb: Any) -> list[tuple[str, Any]]:
        branches = [b for b in wb.ci_branches() if b.active]
        if not branches:
            return []
        names = {p.path: p.name for p in wb.project_list()}
        return [(names.get(b.project_path) or b.project_path.rstrip("/").rsplit("/", 1)[-1], b) for b in branches]

    def on_dashboard_loaded(self, message: DashboardLoaded) -> None:
        data, now, progress, sessions = message.data, self.clock(), message.progress, message.sessions
        self.rows = {r.id: r for r in data.running + data.queued + data.recent}

        def latest(run: Any) -> Text:  # what the run is redrawing now, else its latest metrics
            if run.status == "queued" and run.status_reason:  # in the queue: what it waits for
                return cell(f"queued: {run.status_reason}", "yellow")
            if run.id in sessions:
                return cell(session_where(sessions[run.id], now))
            line = progress.get(run.id)
            return cell(line) if line else cell(pairs(run.summary))

        queued = len(data.queued)
        self.query_one("#live-title", Static).update(
            f"Running ({len(data.running)})" + (f" · queue: {queued} waiting" if queued else " · queue empty")
            + ("" if data.running else " · launch from Projects (3) or `workbench run PATH`"))
        self._fill("#live", [(r.id, (cell(r.id), project_cell(r), cell(duration(r, now)),
                                        cell(session_gpus(sessions[r.id]) if r.id in sessions
                                             else f"{r.metric_points:,}"),
                                        latest(r)))
                             for r in data.running + data.queued],
                   empty=("-", "nothing running", "", "", ""))
        self._fill("#recent", [(r.id, (cell(r.id), status_cell(r.status),
                                          project_cell(r), cell(pairs(r.summary)),
                                          cell(ago(r.finished_at, now))))
                               for r in data.recent],
                   empty=("-", "", "no finished runs yet", "", ""))
        ci = self.query_one("#ci-branches", Static)
        ci.display = bool(message.ci)
        if message.ci:
            ci.update(ci_summary(message.ci, self.app.current_theme.accent or "cyan"))
        remote = fleet_summary(message.fleet)
        self.query_one("#machine", Static).update(machine_summary(message.machine) + ("\n" + remote if remote else ""))

    def _fill(self, selector: str, rows: list[tuple[str, tuple[str, ...]]], empty: tuple[str, ...]) -> None:
        table = self.query_one(selector, DataTable)
        keys = [key for key, _ in rows] or ["-"]
        if [k.value for k in table.rows] != keys:
            table.clear()
            for key, cells in rows or [("-", empty)]:
                table.add_row(*cells, key=key)
            return
        for key, cells in rows:
            for column, value in zip(table.columns, cells):
                if table.get_cell(key, column) != value:
                    table.update_cell(key, column, value, update_width=True)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def selected_run(self) -> str | None:
        """The run under the cursor of the focused table (the running runs' when neither has focus)."""
        table = self.focused if isinstance(self.focused, DataTable) else self.query_one("#live", DataTable)
        if not table.row_count:
            return None
        run_id = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return run_id if run_id and run_id != "-" else None

    def action_open(self) -> None:
        run_id = self.selected_run()
        if run_id:
            from workbench.tui.screens.run_detail import RunDetailScreen
            self.app.push_screen(RunDetailScreen(run_id))

    def selected_row(self) -> Any | None:
        return self.rows.get(self.selected_run() or "")

    def palette_commands(self) -> list[PaletteCommand]:
        return [("Open run", "the selected running or recent run", self.action_open),
                *self.session_commands("the selected")]
