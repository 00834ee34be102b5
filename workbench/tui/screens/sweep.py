"""One sweep (opened with w on a trial in the Runs screen, or from the sweeps list): its progress, best
trial, cost and why it stopped; its trials sorted by the objective, best first; and a scatter per param of
how it relates to the objective. Refreshed while the sweep runs; enter opens a trial, c cancels the sweep."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from workbench.formatting import money, short_value
from workbench.textplot import param_scatter
from workbench.tui.cells import cell, escape, status_cell
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.widgets.cursor import cursor_key


class SweepLoaded(Message):
    def __init__(self, summary: Any, error: str | None) -> None:
        super().__init__()
        self.summary, self.error = summary, error


def progress_text(summary: Any) -> str:
    counts = summary.progress
    done = sum(n for status, n in counts.items() if status not in ("queued", "running"))
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{done}/{summary.options['trials']} done" + (f" ({parts})" if parts else "")


class SweepScreen(BaseScreen):
    MODE = "runs"
    REFRESH_SECONDS = 1.0
    BINDINGS = [
        Binding("escape", "back", "Back", id="sweep.back"),
        Binding("enter", "open", "Open trial", id="sweep.open"),
        Binding("c", "cancel_sweep", "Cancel sweep", id="sweep.cancel"),
        Binding("j", "down", "Down", show=False, id="sweep.down"),
        Binding("k", "up", "Up", show=False, id="sweep.up"),
    ]
    DEFAULT_CSS = """
    SweepScreen #sweep-title { height: auto; padding: 0 1; background: $boost; }
    SweepScreen #sweep-trials { height: auto; max-height: 14; }
    SweepScreen #sweep-body { height: 1fr; }
    SweepScreen .sweep-scatter { height: auto; padding: 1 1 0 1; }
    """

    def __init__(self, sweep_id: str) -> None:
        super().__init__()
        self.sweep_id = sweep_id
        self.summary: Any = None  # the facade's SweepSummary, as last loaded
        self.loads = 0  # answers shown so far (tests wait on it)

    def compose_body(self) -> ComposeResult:
        yield Static(f"sweep {escape(self.sweep_id)}: loading…", id="sweep-title")
        with VerticalScroll(id="sweep-body"):
            yield DataTable(id="sweep-trials", cursor_type="row", zebra_stripes=True)
            yield Static("", id="sweep-scatters", classes="sweep-scatter")

    def reload(self) -> None:
        if self.summary is None or self.summary.status == "running" or any(
                t.status in ("queued", "running") for t in self.summary.trials):
            self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep")
    def load(self) -> None:
        try:
            self.post_message(SweepLoaded(self.workbench.sweep_summary(self.sweep_id), None))
        except Exception as exc:  # noqa: BLE001 - shown on the screen (a sweep id that does not exist)
            self.post_message(SweepLoaded(None, getattr(exc, "message", None) or str(exc)))

    def on_sweep_loaded(self, message: SweepLoaded) -> None:
        title = self.query_one("#sweep-title", Static)
        self.loads += 1
        if message.error:
            title.update(f"[b red]{escape(message.error)}[/]")
            return
        summary = self.summary = message.summary
        assert summary is not None
        options = summary.options
        objective = options.get("objective")
        lines = [f"[b]sweep {escape(summary.id)}[/b] {escape(summary.status)} · "
                 f"{escape(summary.project)}/{escape(summary.experiment)} · {escape(summary.method)}, "
                 f"{progress_text(summary)}, ≤{options['max_parallel']} at once"]
        best = next((t for t in summary.trials if t.id == summary.best), None)
        goal = f"{options.get('direction', 'maximize')} {escape(objective)}" if objective else "no objective"
        budget = f" of ${options['budget']:.2f}" if options.get("budget") else ""
        lines.append(f"{goal} · best " + (f"[b green]{escape(best.id)}[/] = {short_value(best.objective)}"
                                          if best and best.objective is not None else "-")
                     + f" · cost {money(summary.cost)}{budget}")
        if summary.status_reason:
            lines.append(f"[yellow]{escape(summary.status_reason)}[/]")
        title.update("\n".join(lines))
        self._show_trials(summary, objective)
        self._show_scatters()

    def on_resize(self) -> None:
        # an ended sweep is not loaded again: its scatters are drawn again for the new width from what it has
        self._show_scatters()

    def _show_scatters(self) -> None:
        if self.summary is None:
            return
        objective = self.summary.options.get("objective")
        scatters = [param_scatter(self.summary.trials, name, objective, width=max(20, self.size.width - 16))
                    for name in self.summary.space] if objective else []
        text = "\n\n".join("\n".join(chart) for chart in scatters if chart)
        self.query_one("#sweep-scatters", Static).update(Text(text or "the scatters appear once two trials have "
                                                              "written the objective" if objective else text))

    def _show_trials(self, summary: Any, objective: str | None) -> None:
        table = self.query_one("#sweep-trials", DataTable)
        names = list(summary.space)
        selected = self.selected_trial()
        with self.app.batch_update():
            table.clear(columns=True)
            for label in ("trial", "run", "status", *names, objective or "objective", "cost"):
                table.add_column(label)
            for t in summary.trials:
                best = t.id == summary.best
                table.add_row(cell(str(t.trial + 1)), cell(t.id, "bold green" if best else ""),
                              status_cell(t.status), *(cell(short_value(t.params.get(n))) for n in names),
                              cell("-" if t.objective is None else short_value(t.objective),
                                   "bold green" if best else ""), cell(money(t.cost)), key=t.id)
            if selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected))

    def selected_trial(self) -> str | None:
        return cursor_key(self.query_one("#sweep-trials", DataTable))

    def action_open(self) -> None:
        run_id = self.selected_trial()
        if run_id:
            self.app.push_screen(RunDetailScreen(run_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_down(self) -> None:
        self.query_one("#sweep-trials", DataTable).action_cursor_down()

    def action_up(self) -> None:
        self.query_one("#sweep-trials", DataTable).action_cursor_up()

    def action_cancel_sweep(self) -> None:
        if self.summary is not None and self.summary.status != "running":
            self.notify(f"sweep {self.sweep_id} has already ended ({self.summary.status})")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel()
        self.app.push_screen(ConfirmScreen(f"Cancel sweep {self.sweep_id}? Its queued trials leave the queue and "
                                           "running ones stop; finished trials stay."), answered)

    @work(thread=True, exit_on_error=False, group="sweep-cancel", name="Cannot cancel sweep")
    def cancel(self) -> None:
        sweep = self.workbench.cancel_sweep(self.sweep_id)
        self.app.call_from_thread(self.notify, f"sweep {sweep.id} {sweep.status}")
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()

    def palette_commands(self) -> list[PaletteCommand]:
        return [("Open trial", "the selected trial's run", self.action_open),
                ("Cancel sweep", "stop its queued and running trials (asks first)", self.action_cancel_sweep)]
