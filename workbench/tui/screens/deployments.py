"""Deployments: each one's endpoint, live version, health, status and last switch, checked with its
machine on every refresh (health asked, a deploy left half-way settled, a stopped proxy brought back);
the highlighted one's history of switches below. b rolls back, s stops (each asks first), D deploys
another version of its model."""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from workbench.tui.formatting import cell, escape
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.widgets.cursor import cursor_key

COLUMNS = ("deployment", "status", "live", "health", "endpoint", "machine", "last switch")
HEALTH_STYLE = {"ok": "green", "failing": "bold red", "unknown": "yellow"}


class DeploymentsLoaded(Message):
    def __init__(self, deployments: list[dict[str, Any]], histories: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__()
        self.deployments, self.histories = deployments, histories


def stamp(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


class DeploymentsScreen(BaseScreen):
    MODE = "deployments"
    REFRESH_SECONDS = 5.0  # each refresh asks every live version's health on its machine
    BINDINGS = [
        Binding("b", "rollback", "Rollback", id="deployments.rollback"),
        Binding("s", "stop", "Stop", id="deployments.stop"),
        Binding("D", "deploy", "Deploy version", id="deployments.deploy"),
        Binding("r", "reload", "Refresh", show=False, id="deployments.refresh"),
        Binding("j", "down", "Down", show=False, id="deployments.down"),
        Binding("k", "up", "Up", show=False, id="deployments.up"),
    ]
    DEFAULT_CSS = """
    DeploymentsScreen #deployments-hint { height: 1; padding: 0 1; color: $text-muted; }
    DeploymentsScreen DataTable { height: 1fr; }
    DeploymentsScreen #deployments-detail { height: 9; border-top: solid $panel; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.loads = 0

    def compose_body(self) -> ComposeResult:
        yield Static("checking deployments…", id="deployments-hint")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="deployments-table")
        for label in COLUMNS:
            table.add_column(label, key=label)
        yield table
        with VerticalScroll(id="deployments-detail"):
            yield Static("", id="deployments-history")

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#deployments-table", DataTable)

    def reload(self) -> None:
        if not any(w.group == "deployments" and not w.is_finished for w in self.workers):
            self.load()  # a machine that does not answer never piles up checks

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exit_on_error=False, group="deployments")
    def load(self) -> None:
        wb = self.workbench
        listed = wb.deployments(check=True)
        histories = {d["name"]: wb.deployment(d["name"], check=False)["events"][-20:] for d in listed}
        self.post_message(DeploymentsLoaded(listed, histories))

    def on_deployments_loaded(self, message: DeploymentsLoaded) -> None:
        self.loads += 1
        self.histories = message.histories
        table = self.table
        selected = self.selected_name()
        self.rows = {d["name"]: d for d in message.deployments}
        with self.app.batch_update():
            table.clear()
            for d in message.deployments:
                live = f"v{d['live_version']}" if d.get("live_container") else "-"
                if d.get("operation"):
                    live += f" → v{d['operation'].get('version')}…"
                health = d.get("health") or "-"
                last = d.get("last_switch")
                table.add_row(cell(d["name"]), cell(d["status"], "green" if d["status"] == "live" else "yellow"),
                              cell(live), cell(health, HEALTH_STYLE.get(health, "")), cell(d["endpoint"]),
                              cell(d["machine"]), cell(stamp(last["ts"]) if last else "-"), key=d["name"])
            if selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected))
        self.query_one("#deployments-hint", Static).update(
            f"{len(self.rows)} deployment(s) · health checked every {self.REFRESH_SECONDS:.0f} s · b rollback · "
            "s stop · D deploy" if self.rows else
            "no deployments yet: on the Models screen (5), pick a version and press D")
        self._show_history()

    def selected_name(self) -> str | None:
        return cursor_key(self.table)

    def on_data_table_row_highlighted(self) -> None:
        self._show_history()

    def _show_history(self) -> None:
        name = self.selected_name()
        d = self.rows.get(name or "")
        out = self.query_one("#deployments-history", Static)
        if d is None:
            out.update("")
            return
        lines = []
        if d.get("status_reason"):
            lines.append(f"[yellow]{escape(d['status_reason'])}[/]")
        if d.get("health_detail"):
            lines.append(f"[yellow]{escape(d['health_detail'])}[/]")
        for e in reversed(self.histories.get(d["name"], [])):
            style = "red" if e["kind"] in ("deploy-failed",) or e.get("health") == "failing" else ""
            text = f"{stamp(e['ts'])}  {escape(e['kind']):<15} {escape(e['message'])}"
            lines.append(f"[{style}]{text}[/]" if style else text)
        out.update("\n".join(lines) or "no events yet")

    def action_down(self) -> None:
        self.table.action_cursor_down()

    def action_up(self) -> None:
        self.table.action_cursor_up()

    def _confirmed(self, question: str, then: Any) -> None:
        from workbench.tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                then()
        self.app.push_screen(ConfirmScreen(question), answered)

    def action_rollback(self) -> None:
        name = self.selected_name()
        if name:
            self._confirmed(f"Roll {name} back to the version it served before? Requests keep being answered "
                            "during the switch.", lambda: self.act("rollback", name))

    def action_stop(self) -> None:
        name = self.selected_name()
        if name:
            self._confirmed(f"Stop serving {name}? Its endpoint stops answering; its versions are kept.",
                            lambda: self.act("stop", name))

    @work(thread=True, exit_on_error=False, group="deployments-edit", name="Deployment change failed")
    def act(self, what: str, name: str) -> None:
        wb = self.workbench
        if what == "rollback":
            done = wb.rollback(name)
            message = f"{name}: v{done['live_version']} serving again"
        else:
            wb.stop_deployment(name)
            message = f"{name}: stopped"
        self.app.call_from_thread(self.notify, message)
        self.load()

    def action_deploy(self) -> None:
        d = self.rows.get(self.selected_name() or "")
        if not d:
            self.notify("deploy from the Models screen (5): pick a version, press D")
            return
        from workbench.tui.screens.prompt import PromptScreen

        def answered(ref: str | None) -> None:
            if ref:
                self.app.deploy_model(ref, d["machine"], None, d["name"])  # type: ignore[attr-defined]
        self.app.push_screen(PromptScreen(f"Deploy which version of {d['model']} to {d['name']}?",
                                          f"{d['model']}:VERSION or {d['model']}@ALIAS", d["model"]), answered)

    def palette_commands(self) -> list[PaletteCommand]:
        return [("Roll back", "switch the selected deployment back to its previous version", self.action_rollback),
                ("Stop deployment", "stop serving (versions kept)", self.action_stop),
                ("Deploy a version", "another version of the selected deployment's model", self.action_deploy),
                ("Check now", "ask every deployment's health now", self.action_reload)]
