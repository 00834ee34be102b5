"""The model registry: every version of every model, newest first within a model, with its aliases, source
run, checks and metrics; the highlighted version's lineage and its model's alias history (newest first)
below. enter opens the source run, a points an alias at the version, D deploys it (the machine picked in a
form)."""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from workbench.formatting import pairs
from workbench.tui.cells import cell, escape
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.screens.deploy_form import DeployFormScreen
from workbench.tui.screens.prompt import PromptScreen
from workbench.tui.screens.run_detail import RunDetailScreen
from workbench.tui.widgets.cursor import cursor_key

COLUMNS = ("version", "aliases", "run", "project/experiment", "checks", "metrics", "registered")


class ModelsLoaded(Message):
    def __init__(self, models: list[Any], machines: list[str]) -> None:
        super().__init__()
        self.models, self.machines = models, machines


def stamp(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


class ModelsScreen(BaseScreen):
    MODE = "models"
    REFRESH_SECONDS = 5.0
    BINDINGS = [
        Binding("enter", "open_run", "Source run", id="models.open_run"),
        Binding("a", "alias", "Alias", id="models.alias"),
        Binding("D", "deploy", "Deploy", id="models.deploy"),
        Binding("r", "reload", "Refresh", show=False, id="models.refresh"),
        Binding("j", "down", "Down", show=False, id="models.down"),
        Binding("k", "up", "Up", show=False, id="models.up"),
    ]
    DEFAULT_CSS = """
    /* the empty state takes two lines at 80 columns */
    ModelsScreen #models-hint { height: auto; padding: 0 1; color: $text-muted; }
    ModelsScreen DataTable { height: 1fr; }
    ModelsScreen #models-detail { height: 9; border-top: solid $panel; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.versions: dict[str, Any] = {}  # "name:version" -> the facade's ModelVersion
        self.histories: dict[str, list[Any]] = {}  # "name:version" -> its model's alias history
        self.machines: list[str] = ["local"]
        self.loads = 0

    def compose_body(self) -> ComposeResult:
        yield Static("loading models…", id="models-hint")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="models-table")
        for label in COLUMNS:
            table.add_column(label, key=label)
        yield table
        with VerticalScroll(id="models-detail"):
            yield Static("", id="models-lineage")

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#models-table", DataTable)

    def reload(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="models")
    def load(self) -> None:
        wb = self.workbench
        models = [wb.model(m.name) for m in wb.models()]
        machines = ["local"] + [m.name for m in wb.list_machines() if m.name != "local"]
        self.post_message(ModelsLoaded(models, machines))

    def on_models_loaded(self, message: ModelsLoaded) -> None:
        self.loads += 1
        self.machines = message.machines
        table = self.table
        selected = self.selected_key()
        self.versions, self.histories = {}, {}
        with self.app.batch_update():
            table.clear()
            for model in message.models:
                for v in reversed(model.versions):
                    key = f"{model.name}:{v.version}"
                    self.versions[key], self.histories[key] = v, model.alias_history
                    lineage = v.lineage
                    verdict = lineage.get("verdict") or "-"
                    table.add_row(cell(key), cell(" ".join(f"@{a}" for a in v.aliases or []) or "-", "bold"),
                                  cell(v.run_id), cell(f"{lineage['project']}/{lineage['experiment']}"),
                                  cell(verdict + (" (forced)" if v.forced else ""),
                                       "green" if verdict == "pass" else "red" if verdict == "fail" else ""),
                                  cell(pairs(lineage.get("metrics") or {}, limit=3)), cell(stamp(v.created_at)),
                                  key=key)
            if selected in table.rows:
                table.move_cursor(row=table.get_row_index(selected))
        count = len({k.split(':')[0] for k in self.versions})
        self.query_one("#models-hint", Static).update(
            f"{count} model(s), {len(self.versions)} version(s) · enter source run · a alias · D deploy"
            if self.versions else "no models yet: open a run (4, enter) and press M to register one of its "
                                  "artifacts, or `workbench models register RUN ARTIFACT --name NAME`")
        self._show_detail()

    def selected_key(self) -> str | None:
        return cursor_key(self.table)

    def selected(self) -> Any:
        """The facade's ModelVersion under the cursor, or None."""
        return self.versions.get(self.selected_key() or "")

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        v = self.selected()
        detail = self.query_one("#models-lineage", Static)
        if v is None:
            detail.update("")
            return
        lineage = v.lineage
        lines = [f"[b]{escape(v.name)}:{v.version}[/b]  {escape(v.filename)} · {v.size:,} bytes · "
                 f"sha256 {v.sha256[:16]}",
                 f"from run {escape(v.run_id)} ({escape(lineage['status'])}) · snapshot "
                 f"{escape((lineage.get('snapshot') or '-')[:12])} · image {escape(lineage.get('image') or '-')}",
                 f"params {escape(str(pairs(lineage.get('params') or {})))}",
                 f"metrics {escape(str(pairs(lineage.get('metrics') or {})))}"]
        for h in reversed(self.histories[f"{v.name}:{v.version}"][-4:]):  # newest first, as `models show`
            moved = f"{h.previous} → {h.version}" if h.previous else f"→ {h.version}"
            lines.append(f"{stamp(h.ts)} @{escape(h.alias)} {moved} by {escape(h.who)}")
        detail.update("\n".join(lines))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()

    def action_down(self) -> None:
        self.table.action_cursor_down()

    def action_up(self) -> None:
        self.table.action_cursor_up()

    def action_open_run(self) -> None:
        v = self.selected()
        if v:
            self.app.push_screen(RunDetailScreen(v.run_id))

    def action_alias(self) -> None:
        v = self.selected()
        if not v:
            return

        def answered(alias: str | None) -> None:
            if alias:
                self.set_alias(v.name, v.version, alias)
        self.app.push_screen(PromptScreen(f"Point an alias of {v.name} at version {v.version}",
                                          "alias, e.g. production"), answered)

    @work(thread=True, exit_on_error=False, group="models-edit", name="Cannot set the alias")
    def set_alias(self, name: str, version: int, alias: str) -> None:
        moved = self.workbench.alias_model(name, version, alias)
        was = f" (was {moved.previous})" if moved.previous else ""
        self.app.call_from_thread(self.notify, f"{name}@{alias} → version {version}{was}")
        self.load()

    def action_deploy(self) -> None:
        v = self.selected()
        if not v:
            return
        ref = f"{v.name}:{v.version}"

        def chosen(answer: dict | None) -> None:
            if answer:
                self.app.deploy_model(ref, answer["machine"], answer["port"])  # type: ignore[attr-defined]
        self.app.push_screen(DeployFormScreen(ref, self.machines, None), chosen)

    def palette_commands(self) -> list[PaletteCommand]:
        return [("Open source run", "the run the selected version came from", self.action_open_run),
                ("Set alias", "point an alias (e.g. production) at the selected version", self.action_alias),
                ("Deploy version", "serve the selected version on a machine (blue/green)", self.action_deploy)]
