"""Registered projects and their experiments; spec errors inline; add a folder; launch with overrides."""

from __future__ import annotations

from typing import Any, Sequence

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from rich.text import Text

from workbench.errors import WorkbenchError
from workbench.formatting import money, pairs
from workbench.tui.cells import cell, escape, folder_cell
from workbench.tui.screens.add_project import AddProjectScreen
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.launch_form import LaunchForm
from workbench.tui.widgets.cursor import cursor_key
from workbench.tui.widgets.fitted_table import FittedTable

SEP = "\x1f"


# (column, least width, share of the spare width): the spare goes to params most
LAYOUT = (("project", 11, 1), ("experiment", 10, 1), ("watch", 6, 0), ("spent", 6, 0), ("runs on", 12, 2),
          ("params", 18, 4), ("folder / problem", 10, 2))
COLUMNS = tuple(key for key, _, _ in LAYOUT)
FOLDER_LABELS = ("folder / problem", "folder/problem", "folder")


def short_watch(state: str) -> str:
    """A watch's state in the table's few cells (`watching` was cut to `watc…` at 80 columns); the detail
    below the table says it whole."""
    shown = {"watching": "on", "change seen": "change", "run started": "run", "launch failed": "failed"}
    return shown.get(state) or state.removeprefix("last: ")


class ProjectsTable(FittedTable):
    """Where the width runs out (80 columns), columns give way in this order until the rest fit: "spent"
    goes while no project has spent anything, then "runs on", the folder and the names narrow; params keep
    room for their first items (`lr=0.1 epochs=15 …`). The detail below the table says the highlighted row
    whole."""

    GIVE_WAY = (("hide", "spent"), ("narrow", {"runs on": 10, "folder / problem": 8}),
                ("narrow", {"project": 10, "experiment": 9}), ("narrow", {"params": 14}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.costed = False  # a project has spent money: "spent" stays (set by the screen)

    def layout_for(self, available: int) -> Sequence[tuple[str, int, int]]:
        layout = list(self.column_layout)
        for step, what in self.GIVE_WAY:
            if sum(least for _, least, _ in layout) <= available:
                break
            if step == "hide" and not self.costed:
                layout = [(k, 0, 0) if k == what else (k, least, weight) for k, least, weight in layout]
            elif step == "narrow":
                layout = [(k, min(least, what.get(k, least)), weight) for k, least, weight in layout]
        return layout

    def fit_columns(self) -> None:
        super().fit_columns()
        column = self.columns.get(ColumnKey("folder / problem"))
        if column is None or not column.width:
            return
        label = next((l for l in FOLDER_LABELS if len(l) <= column.width), FOLDER_LABELS[-1])
        if str(column.label) != label:
            column.label = Text(label)
            self._clear_caches()
            self.refresh()

    def show_costed(self, costed: bool) -> None:
        if costed != self.costed:
            self.costed = costed
            self.fit_columns()


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
        Binding("enter", "commits", "Commits", id="projects.commits"),
        Binding("l", "launch", "Launch", id="projects.launch"),
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
    ProjectsScreen #projects-detail { height: auto; max-height: 6; padding: 0 1; border-top: solid $primary; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.machines: list[str] = ["local"]  # where the launch form offers to run

    def compose_body(self) -> ComposeResult:
        yield Static("loading projects…", id="projects-hint")
        yield ProjectsTable(LAYOUT, cursor_type="row", zebra_stripes=True, id="projects-table")
        yield Static("", id="projects-detail")

    @property
    def table(self) -> ProjectsTable:
        return self.query_one("#projects-table", ProjectsTable)

    def reload(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.reload()

    @work(thread=True, exclusive=True, exit_on_error=False, group="projects")
    def load(self) -> None:
        rows = []
        wb = self.workbench
        costs = wb.project_costs()
        for project in wb.project_list():
            try:
                spec = wb.read_spec(project.path)
            except WorkbenchError as exc:
                rows.append({"project": project.name, "experiment": None, "path": project.path,
                             "error": exc.message, "cost": costs.get(project.name)})
                continue
            for exp in spec.experiments.values():
                rows.append({"project": project.name, "experiment": exp.name, "path": project.path,
                             "runs_on": runs_on(exp), "params": exp.params, "error": None,
                             "watch_run": spec.watch.run if spec.watch else None, "cost": costs.get(project.name)})
        machines = [m.name for m in wb.list_machines()]
        self.post_message(ProjectsLoaded(rows, ["local"] + [m for m in machines if m != "local"]))

    def on_projects_loaded(self, message: ProjectsLoaded) -> None:
        table = self.table
        wanted = {f"{r['project']}{SEP}{r['experiment'] or ''}": r for r in message.rows}
        self.rows, self.machines = wanted, message.machines
        with self.app.batch_update():
            table.show_costed(any(r["cost"] is not None for r in message.rows))
            if list(wanted) != [k.value for k in table.rows]:
                table.clear()
                for key, row in wanted.items():
                    table.add_row(*self._cells(row), key=key)
            else:
                for key, row in wanted.items():
                    for label, value in zip(COLUMNS, self._cells(row)):
                        if table.get_cell(key, label) != value:
                            table.update_cell(key, label, value)
        hint = (f"{len({r['project'] for r in message.rows})} project(s) · enter: its commits · l launches"
                if message.rows else "no projects yet: press a to add a folder that holds a workbench.toml")
        self.query_one("#projects-hint", Static).update(hint)
        self._show_detail()

    def _cells(self, row: dict[str, Any]) -> tuple[Text, ...]:
        if row["error"]:
            return (cell(row["project"]), cell("-"), cell("-"), cell(money(row["cost"])), cell("-"), cell("-"),
                    cell(row["error"].removeprefix(row["path"] + "/"), "red"))  # the folder: in the detail
        session = self.app.watches.get(row["project"])  # type: ignore[attr-defined]
        watching = "-" if row.get("watch_run") != row["experiment"] else (short_watch(session.state) if session
                                                                          else "off")
        return (cell(row["project"]), cell(row["experiment"]), cell(watching, "green" if session else ""),
                cell(money(row["cost"])), cell(row["runs_on"]), cell(pairs(row["params"])), folder_cell(row["path"]))

    def _show_detail(self) -> None:
        """The highlighted row whole, whatever the table's widths cut: its folder, where it runs, every
        param, the watch and the money spent, or the spec's problem."""
        row = self.selected()
        detail = self.query_one("#projects-detail", Static)
        if row is None:
            detail.update("")
            return
        spent = f" · spent {money(row['cost'])}" if row["cost"] is not None else ""
        lines = [f"[b]{escape(row['project'])}[/b] in {escape(row['path'])}{spent}"]
        if row["error"]:
            lines.append(f"[red]{escape(row['error'].removeprefix(row['path'] + '/'))}[/]")
        else:
            session = self.app.watches.get(row["project"])  # type: ignore[attr-defined]
            watch = f" · watch {escape(session.state if session else 'off')}" if row.get("watch_run") == \
                row["experiment"] else ""
            lines.append(f"[b]{escape(row['experiment'])}[/b] runs on {escape(row['runs_on'])}{watch}")
            lines.append(f"params {escape(str(pairs(row['params'])))}" if row["params"] else "no params")
        detail.update("\n".join(lines))

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail()

    def selected(self) -> dict[str, Any] | None:
        return self.rows.get(cursor_key(self.table) or "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_commits()

    def action_commits(self) -> None:
        """The project's commits with their CI verdicts (its git repository's current branch)."""
        row = self.selected()
        if row is None:
            return
        from workbench.tui.screens.ci_commits import CiCommitsScreen  # imported when first shown

        self.app.push_screen(CiCommitsScreen(row["project"], row["path"], row["experiment"],
                                             launch=lambda: self.launch_row(row)))

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
        if row is not None:
            self.launch_row(row)

    def launch_row(self, row: dict[str, Any]) -> None:
        """The launch form of `row`'s experiment (also from its commits' screen)."""
        if row["error"]:
            self.notify(row["error"], title="Fix the spec first", severity="error")
            return

        def submitted(result: dict[str, Any] | None) -> None:
            if result:
                self.app.launch_run(row["path"], row["experiment"], result["overrides"],  # type: ignore[attr-defined]
                                    result["executor"], result["machine"])
        self.app.push_screen(LaunchForm(row["project"], row["experiment"], row["params"], self.machines, row["path"]),
                             submitted)

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("Commits", "the selected project's commits with their CI verdicts", self.action_commits),
            ("Launch experiment", "run the selected experiment, with param overrides", self.action_launch),
            ("Add project", "register a folder that holds a workbench.toml", self.action_add),
            ("Remove project", "unregister the selected project (runs stay)", self.action_remove),
            ("Toggle watching", "re-run on file changes, per the project's [watch] table", self.action_toggle_watch),
        ]
