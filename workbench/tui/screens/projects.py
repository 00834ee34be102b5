"""Registered projects and their experiments; spec errors inline; add a folder; launch with overrides."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from rich.text import Text

from workbench.tui.formatting import cell, money, pairs
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.widgets.cursor import cursor_key

SEP = "\x1f"


COLUMNS = ("project", "experiment", "watch", "spent", "runs on", "params", "folder / problem")


def runs_on(exp: Any) -> str:
    """Where a launch that names no machine sends the experiment's runs (as `workbench run` does), in what
    image, with how many GPUs. The executor is chosen at launch (docker where an engine answers)."""
    where = f"auto: {' or '.join(exp.machines)}" if exp.machines else exp.machine or "local"
    image = exp.image or exp.dockerfile  # the image its Dockerfile builds
    return f"{where} · {image}" + (f" · {exp.gpus} GPU" if exp.gpus else "")


class ProjectsLoaded(Message):
    def __init__(self, rows: list[dict[str, Any]], machines: list[str]) -> None:
        super().__init__()
        self.rows, self.machines = rows, machines


class ProjectsScreen(BaseScreen):
    MODE = "projects"
    REFRESH_SECONDS = 2.0
    BINDINGS = [
        Binding("enter", "launch", "Launch", id="projects.launch"),
        Binding("a", "add", "Add project", id="projects.add"),
        Binding("d", "remove", "Remove", id="projects.remove"),
        Binding("w", "toggle_watch", "Watch", id="projects.watch"),
        Binding("r", "reload", "Refresh", id="projects.refresh"),
        Binding("j", "down", "Down", show=False, id="projects.down"),
        Binding("k", "up", "Up", show=False, id="projects.up"),
    ]
    DEFAULT_CSS = """
    ProjectsScreen #projects-hint { height: 1; padding: 0 1; color: $text-muted; }
    ProjectsScreen DataTable { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.machines: list[str] = ["local"]  # where the launch form offers to run

    def compose_body(self) -> ComposeResult:
        yield Static("loading projects…", id="projects-hint")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="projects-table")
        for label in COLUMNS:
            table.add_column(label, key=label)
        yield table

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#projects-table", DataTable)

    def reload(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.reload()

    @work(thread=True, exclusive=True, exit_on_error=False, group="projects")
    def load(self) -> None:
        from workbench.projects.spec import load_spec
        from workbench.errors import WorkbenchError

        rows = []
        costs = self.workbench.project_costs()
        for project in self.workbench.project_list():
            try:
                spec = load_spec(project["path"])
            except WorkbenchError as exc:
                rows.append({"project": project["name"], "experiment": None, "path": project["path"],
                             "error": exc.message, "cost": costs.get(project["name"])})
                continue
            for exp in spec.experiments.values():
                rows.append({"project": project["name"], "experiment": exp.name, "path": project["path"],
                             "runs_on": runs_on(exp), "params": exp.params, "error": None,
                             "watch_run": spec.watch.run if spec.watch else None, "cost": costs.get(project["name"])})
        machines = [m["name"] for m in self.workbench.list_machines()]
        self.post_message(ProjectsLoaded(rows, ["local"] + [m for m in machines if m != "local"]))

    def on_projects_loaded(self, message: ProjectsLoaded) -> None:
        table = self.table
        wanted = {f"{r['project']}{SEP}{r['experiment'] or ''}": r for r in message.rows}
        self.rows, self.machines = wanted, message.machines
        with self.app.batch_update():
            if list(wanted) != [k.value for k in table.rows]:
                table.clear()
                for key, row in wanted.items():
                    table.add_row(*self._cells(row), key=key)
            else:
                for key, row in wanted.items():
                    for label, value in zip(COLUMNS, self._cells(row)):
                        if table.get_cell(key, label) != value:
                            table.update_cell(key, label, value, update_width=True)
        hint = (f"{len({r['project'] for r in message.rows})} project(s) · enter launches the selected experiment"
                if message.rows else "no projects yet: press a to add a folder that holds a workbench.toml")
        self.query_one("#projects-hint", Static).update(hint)

    def _cells(self, row: dict[str, Any]) -> tuple[Text, ...]:
        if row["error"]:
            return (cell(row["project"]), cell("-"), cell("-"), cell(money(row["cost"])), cell("-"), cell("-"),
                    cell(row["error"], "red"))
        session = self.app.watches.get(row["project"])  # type: ignore[attr-defined]
        watching = "-" if row.get("watch_run") != row["experiment"] else (session.state if session else "off")
        return (cell(row["project"]), cell(row["experiment"]), cell(watching, "green" if session else ""),
                cell(money(row["cost"])), cell(row["runs_on"]), cell(pairs(row["params"], limit=3)), cell(row["path"]))

    def selected(self) -> dict[str, Any] | None:
        return self.rows.get(cursor_key(self.table) or "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_launch()

    def action_down(self) -> None:
        self.table.action_cursor_down()

    def action_up(self) -> None:
        self.table.action_cursor_up()

    def action_toggle_watch(self) -> None:
        row = self.selected()
        if row is None or row["error"]:
            return
        if not row.get("watch_run"):
            self.notify(f"{row['project']} has no [watch] table in its workbench.toml", severity="warning")
            return
        self.app.toggle_watch(row["project"], row["path"])  # type: ignore[attr-defined]

    def action_add(self) -> None:
        from workbench.tui.screens.add_project import AddProjectScreen

        def added(path: str | None) -> None:
            if path:
                self.add_project(path)
        self.app.push_screen(AddProjectScreen(), added)

    @work(thread=True, exit_on_error=False, group="projects-edit", name="Cannot add project")
    def add_project(self, path: str) -> None:
        spec = self.workbench.add_project(path)
        self.app.call_from_thread(self.notify, f"{spec.name}: {', '.join(spec.experiments)}", title="Project added")
        self.load()

    def action_remove(self) -> None:
        row = self.selected()
        if not row:
            return
        from workbench.tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.remove_project(row["project"])
        self.app.push_screen(ConfirmScreen(f"Unregister project {row['project']}? Its runs stay in the history."),
                             answered)

    @work(thread=True, exit_on_error=False, group="projects-edit", name="Cannot remove project")
    def remove_project(self, name: str) -> None:
        self.workbench.remove_project(name)
        self.app.call_from_thread(self.notify, f"{name} removed (its runs stay in the history)")
        self.load()

    def action_launch(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row["error"]:
            self.notify(row["error"], title="Fix the spec first", severity="error")
            return
        from workbench.tui.screens.launch_form import LaunchForm

        def submitted(result: dict[str, Any] | None) -> None:
            if result:
                self.app.launch_run(row["path"], row["experiment"], result["overrides"],  # type: ignore[attr-defined]
                                    result["executor"], result["machine"])
        self.app.push_screen(LaunchForm(row["project"], row["experiment"], row["params"], self.machines, row["path"]),
                             submitted)

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("Launch experiment", "run the selected experiment, with param overrides", self.action_launch),
            ("Add project", "register a folder that holds a workbench.toml", self.action_add),
            ("Remove project", "unregister the selected project (runs stay)", self.action_remove),
            ("Toggle watching", "re-run on file changes, per the project's [watch] table", self.action_toggle_watch),
        ]
