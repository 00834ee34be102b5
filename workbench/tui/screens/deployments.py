"""Deployments: each one's endpoint, live version, health, status and last switch, checked with its
machine on every refresh (health asked, a deploy left half-way settled, a stopped proxy brought back).
Below, for the highlighted one: its traffic from the proxy's counters (per version: requests/s, p50/p99,
error % for the last minute and since the switch), its canary, whether callers need a token, and its
history. b rolls back (or ends a canary), P promotes a canary, s stops (each asks first), t shows the
token (never on screen otherwise), D deploys another version of its model."""

from __future__ import annotations

import time
from typing import Any, Sequence

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from workbench.tui.cells import cell, escape
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.prompt import PromptScreen
from workbench.tui.widgets.cursor import cursor_key
from workbench.tui.widgets.fitted_table import FittedTable
from workbench.tui.widgets.traffic import canary_lines, token_line, traffic_lines

COLUMNS = (("deployment", 12, 2), ("status", 7, 0), ("live", 5, 0), ("health", 7, 0), ("endpoint", 21, 1),
           ("machine", 7, 1), ("last switch", 11, 0))
HEALTH_STYLE = {"ok": "green", "failing": "bold red", "errors": "bold red", "unknown": "yellow"}
STATUS_STYLE = {"live": "green", "canary": "cyan"}


class DeploymentsTable(FittedTable):
    """At 80 columns one column gives way: the machine when every deployment is local (the endpoint says
    127.0.0.1), else the last switch (the panel's history has it, with its time)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(COLUMNS, **kwargs)
        self.remote = False  # a deployment on another machine is listed (set by the screen)

    def layout_for(self, available: int) -> Sequence[tuple[str, int, int]]:
        layout = list(self.column_layout)
        if sum(least for _, least, _ in layout) > available:
            gone = "last switch" if self.remote else "machine"
            layout = [(k, 0, 0) if k == gone else (k, least, weight) for k, least, weight in layout]
        return layout

    def show_remote(self, remote: bool) -> None:
        if remote != self.remote:
            self.remote = remote
            self.fit_columns()


class DeploymentsLoaded(Message):
    def __init__(self, deployments: list[Any], details: dict[str, Any]) -> None:
        super().__init__()
        self.deployments, self.details = deployments, details


def stamp(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def short_stamp(ts: float | None) -> str:
    """For the table: every column fits 80 columns."""
    return time.strftime("%m-%d %H:%M", time.localtime(ts)) if ts else "-"


class DeploymentsScreen(BaseScreen):
    MODE = "deployments"
    REFRESH_SECONDS = 5.0  # each refresh asks every live version's health on its machine
    HISTORY = 20  # events kept per deployment for the panel
    BINDINGS = [
        Binding("b", "rollback", "Rollback", id="deployments.rollback"),
        Binding("P", "promote", "Promote", id="deployments.promote"),
        Binding("t", "token", "Token", id="deployments.token"),
        Binding("s", "stop", "Stop", id="deployments.stop"),
        Binding("D", "deploy", "Deploy version", id="deployments.deploy"),
        Binding("r", "reload", "Refresh", show=False, id="deployments.refresh"),
        Binding("j", "down", "Down", show=False, id="deployments.down"),
        Binding("k", "up", "Up", show=False, id="deployments.up"),
    ]
    DEFAULT_CSS = """
    DeploymentsScreen #deployments-hint { height: 1; padding: 0 1; color: $text-muted; }
    DeploymentsScreen DataTable { height: auto; max-height: 7; }
    DeploymentsScreen #deployments-detail { height: 1fr; border-top: solid $panel; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, Any] = {}  # name -> the facade's DeploymentSummary
        self.details: dict[str, Any] = {}  # name -> its DeploymentDetail (traffic, events)
        self.loads = 0

    def compose_body(self) -> ComposeResult:
        yield Static("checking deployments…", id="deployments-hint")
        yield DeploymentsTable(cursor_type="row", zebra_stripes=True, id="deployments-table")
        with VerticalScroll(id="deployments-detail"):
            yield Static("", id="deployments-history")

    @property
    def table(self) -> DeploymentsTable:
        return self.query_one("#deployments-table", DeploymentsTable)

    def reload(self) -> None:
        if not any(w.group == "deployments" and not w.is_finished for w in self.workers):
            self.load()  # a machine that does not answer never piles up checks

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exit_on_error=False, group="deployments")
    def load(self) -> None:
        wb = self.workbench
        listed = wb.deployments(check=True)
        details = {d.name: wb.deployment(d.name, check=False) for d in listed}  # traffic: a metrics read each
        self.post_message(DeploymentsLoaded(listed, details))

    def on_deployments_loaded(self, message: DeploymentsLoaded) -> None:
        self.loads += 1
        self.details = message.details
        table = self.table
        selected = self.selected_name()
        self.rows = {d.name: d for d in message.deployments}
        with self.app.batch_update():
            table.show_remote(any(d.machine != "local" for d in message.deployments))
            table.clear()
            for d in message.deployments:
                live = f"v{d.live_version}" if d.live_container else "-"
                if d.operation:
                    live += f" → v{d.operation.get('version')}…"
                health = d.health or "-"
                last = d.last_switch
                status = "canary" if d.canary and d.status == "live" else d.status
                table.add_row(cell(d.name), cell(status, STATUS_STYLE.get(status, "yellow")),
                              cell(live), cell(health, HEALTH_STYLE.get(health, "")), cell(d.endpoint),
                              cell(d.machine), cell(short_stamp(last["ts"]) if last else "-"), key=d.name)
            if selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected))
        self.query_one("#deployments-hint", Static).update(
            f"{len(self.rows)} deployment(s) · checked every {self.REFRESH_SECONDS:.0f} s · traffic from the "
            "proxy" if self.rows else
            "no deployments yet: on the Models screen (5), pick a version and press D")
        self._show_detail()

    def selected_name(self) -> str | None:
        return cursor_key(self.table)

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        name = self.selected_name()
        d = self.rows.get(name or "")
        out = self.query_one("#deployments-history", Static)
        if d is None:
            out.update("")
            return
        shown = self.details.get(d.name)
        lines = []
        if d.status_reason:
            lines.append(f"[yellow]{escape(d.status_reason)}[/]")
        if d.health_detail:
            lines.append(f"[yellow]{escape(d.health_detail)}[/]")
        lines += traffic_lines(shown.traffic if shown else None)
        lines += canary_lines(d.canary, self.clock())
        lines.append(token_line(d))
        for e in reversed((shown.events if shown else [])[-self.HISTORY:]):
            style = "red" if e["kind"] in ("deploy-failed",) or e.get("health") in ("failing", "errors") else ""
            text = f"{stamp(e['ts'])}  {escape(e['kind']):<15} {escape(e['message'])}"
            lines.append(f"[{style}]{text}[/]" if style else text)
        out.update("\n".join(lines) or "no events yet")

    def action_down(self) -> None:
        self.table.action_cursor_down()

    def action_up(self) -> None:
        self.table.action_cursor_up()

    def _confirmed(self, question: str, then: Any) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()
        self.app.push_screen(ConfirmScreen(question), answered)

    def action_rollback(self) -> None:
        name = self.selected_name()
        if not name:
            return
        canary = self.rows[name].canary
        if canary:
            question = (f"End {name}'s canary of v{canary['version']}? v{self.rows[name].live_version} "
                        "takes every request again; the canary is removed.")
        else:
            live = self.rows[name]
            back = live.rollback_to  # the service's rule, as `deployments rollback` follows it
            if back is None:
                self.notify(f"{name} has no earlier version kept to go back to", severity="warning")
                return
            since = f" from v{live.live_version}" if live.live_container else ""
            question = f"Roll {name} back{since} to v{back}? Requests keep being answered during the switch."
        self._confirmed(question, lambda: self.act("rollback", name))

    def action_promote(self) -> None:
        name = self.selected_name()
        if not name:
            return
        d = self.rows[name]
        canary = d.canary
        if not canary:
            self.notify(f"{name} has no canary to promote: `workbench deploy {d.model}:VERSION --canary 10` "
                        "starts one")
            return
        self._confirmed(f"Promote {name}'s canary v{canary['version']} now (its window is not over)? It takes "
                        f"every request; v{d.live_version} is kept for rollback.", lambda: self.act("promote", name))

    def action_token(self) -> None:
        name = self.selected_name()
        if name:
            self.reveal_token(name)

    @work(thread=True, exit_on_error=False, group="deployments-edit", name="No token to show")
    def reveal_token(self, name: str) -> None:
        secret = self.workbench.deployment_token(name)  # says in one line when the deployment asks for none
        self.app.call_from_thread(self._show_token, name, secret)

    def _show_token(self, name: str, secret: str) -> None:
        self.app.copy_to_clipboard(secret)
        self.notify(f"{secret}\n(copied where the terminal allows; also `workbench deployments token {name}`)",
                    title=f"{name}: callers send Authorization: Bearer", timeout=30)

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
            message = f"{name}: v{done.live_version} serving again"
        elif what == "promote":
            done = wb.promote_canary(name)
            message = f"{name}: v{done.live_version} serving every request"
        else:
            wb.stop_deployment(name)
            message = f"{name}: stopped"
        self.app.say_outcome(message)  # type: ignore[attr-defined]  # replaces the change's progress notice
        self.load()

    def action_deploy(self) -> None:
        d = self.rows.get(self.selected_name() or "")
        if not d:
            self.notify("deploy from the Models screen (5): pick a version, press D")
            return

        def answered(ref: str | None) -> None:
            if ref:
                self.app.deploy_model(ref, d.machine, None, d.name)  # type: ignore[attr-defined]
        self.app.push_screen(PromptScreen(f"Deploy which version of {d.model} to {d.name}?",
                                          f"{d.model}:VERSION or {d.model}@ALIAS", d.model), answered)

    def palette_commands(self) -> list[PaletteCommand]:
        return [("Roll back", "switch the selected deployment back to its previous version (or end its canary)",
                 self.action_rollback),
                ("Promote canary", "every request to the selected deployment's canary now", self.action_promote),
                ("Show token", "the bearer token callers of the selected deployment send", self.action_token),
                ("Stop deployment", "stop serving (versions kept)", self.action_stop),
                ("Deploy a version", "another version of the selected deployment's model", self.action_deploy),
                ("Check now", "ask every deployment's health now", self.action_reload)]
