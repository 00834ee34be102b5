"""The full-screen app: six screens as Textual modes over the same services as the CLI. All blocking work
(Docker, SQLite, files) runs in thread workers that post messages; handlers own the widgets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import App
from textual.binding import Binding

from workbench.config import Config, load_config, save_config
from workbench.errors import WorkbenchError
from workbench.tui.commands import ScreenCommands
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.help import HelpScreen, help_rows
from workbench.tui.themes import DEFAULT_THEME, PACKAGE_THEMES, load_themes
from workbench.tui.widgets.nav_bar import SCREENS


class WorkbenchApp(App[None]):
    TITLE = "Workbench"
    MODES = {"dashboard": DashboardScreen, "machines": lambda: _screen("machines", "MachinesScreen"),
             "projects": lambda: _screen("projects", "ProjectsScreen"), "runs": lambda: _screen("runs", "RunsScreen"),
             "models": lambda: _screen("models", "ModelsScreen"),
             "deployments": lambda: _screen("deployments", "DeploymentsScreen")}
    DEFAULT_MODE = "dashboard"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    BINDINGS = [
        Binding("1", "switch_mode('dashboard')", "Dashboard", show=False, id="nav.dashboard"),
        Binding("2", "switch_mode('machines')", "Machines", show=False, id="nav.machines"),
        Binding("3", "switch_mode('projects')", "Projects", show=False, id="nav.projects"),
        Binding("4", "switch_mode('runs')", "Runs", show=False, id="nav.runs"),
        Binding("5", "switch_mode('models')", "Models", show=False, id="nav.models"),
        Binding("6", "switch_mode('deployments')", "Deployments", show=False, id="nav.deployments"),
        Binding("right_square_bracket", "step_mode(1)", "Next screen", show=False, id="nav.next"),
        Binding("left_square_bracket", "step_mode(-1)", "Previous screen", show=False, id="nav.previous"),
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("colon", "command_palette", "Commands", show=False, id="app.commands"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, workbench: Any, *, clock: Callable[[], float] = time.time,
                 config: Config | None = None, user_themes: Path | None = None) -> None:
        super().__init__()
        self.workbench = workbench
        self.clock = clock
        self.config_error: str | None = None
        if config is None:
            try:
                config = load_config(workbench.dirs.config_file)
            except WorkbenchError as exc:
                config, self.config_error = Config(path=workbench.dirs.config_file), str(exc)
        self.config = config
        self.user_themes = user_themes or workbench.dirs.data / "themes"
        self.fleet: Any = None  # live telemetry of the SSH machines, while the app runs
        self.watches: dict[str, Any] = {}  # project name -> its WatchSession, while watching

    def on_mount(self) -> None:
        themes, errors = load_themes(PACKAGE_THEMES, self.user_themes)
        for theme in themes:
            self.register_theme(theme)
        if errors:
            self.notify("\n".join(errors), title=f"{len(errors)} theme file(s) skipped", severity="warning",
                        timeout=10)
        wanted = self.config.theme or DEFAULT_THEME
        try:
            self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        except Exception as exc:  # noqa: BLE001 - a theme that validates but still fails to apply
            self.theme = DEFAULT_THEME
            self.notify(f"theme {wanted!r} could not be applied: {exc}", severity="error")
        if self.config.keymap:
            self.set_keymap(self.config.keymap)
        if self.config_error:
            self.notify(self.config_error, title="config.toml ignored", severity="error", timeout=10)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.set_interval(60, self._downsample_telemetry)

    def on_ready(self) -> None:
        self.restart_fleet()  # after the first frame: connecting (and importing paramiko) can wait a moment

    @work(thread=True, exclusive=True, exit_on_error=False, group="telemetry-history")
    def _downsample_telemetry(self) -> None:
        self.workbench.store.downsample_telemetry()

    def restart_fleet(self) -> None:
        self._restart_fleet()

    @work(thread=True, exclusive=True, exit_on_error=False, group="fleet")
    def _restart_fleet(self) -> None:
        old, self.fleet = self.fleet, None
        if old is not None:
            old.stop()
        fleet = self.workbench.fleet()
        self.fleet = fleet.start() if fleet is not None else None

    def on_unmount(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()  # the remote streams end with their connections
        for session in self.watches.values():
            session.stop()  # runs it started keep going

    def toggle_watch(self, project: str, path: str) -> None:
        self._toggle_watch(project, path)

    @work(thread=True, exit_on_error=False, group="watch-toggle")
    def _toggle_watch(self, project: str, path: str) -> None:
        session = self.watches.pop(project, None)
        if session is not None:
            session.stop()
            self.call_from_thread(self.notify, f"stopped watching {project}")
            return
        try:
            self.watches[project] = self.workbench.watch(
                path, lambda line: self.call_from_thread(self.notify, line, title=project))
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self.notify, _message(exc), title=f"Cannot watch {project}", severity="error")

    def _theme_changed(self, theme: Any) -> None:
        if theme.name != self.config.theme:
            self.config.theme = theme.name
            if self.config_error:  # never overwrite a config.toml we could not read
                self.notify("theme not saved: fix config.toml first", severity="warning")
                return
            self.persist_config()

    @work(thread=True, exit_on_error=False, group="config")
    def persist_config(self) -> None:
        try:
            save_config(self.config)
        except OSError as exc:
            self.call_from_thread(self.notify, f"cannot save {self.config.path}: {exc}", severity="error")

    # navigation -----------------------------------------------------------------------------------
    def action_step_mode(self, delta: int) -> None:
        modes = [mode for mode, _ in SCREENS]
        current = self.current_mode if self.current_mode in modes else modes[0]
        self.switch_mode(modes[(modes.index(current) + delta) % len(modes)])

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(type(self.screen).__name__.removesuffix("Screen"), help_rows(self.screen)))

    # actions on runs, shared by the screens ----------------------------------------------------------
    def run_action_on_run(self, action: str, run_id: str) -> None:
        self._run_action(action, run_id)

    @work(thread=True, exit_on_error=False, group="run-actions")
    def _run_action(self, action: str, run_id: str) -> None:
        wb = self.workbench
        try:
            if action == "cancel":
                run = wb.cancel(run_id)
                self.call_from_thread(self.notify, f"run {run['id']} {run['status']}")
            else:
                run = wb.rerun(run_id)
                wb.follow_in_background(run["id"])
                self.call_from_thread(self.notify, f"run {run['id']} started (rerun of {run_id})", title="Rerun")
        except Exception as exc:  # noqa: BLE001 - a worker must say what went wrong, never die silently
            self.call_from_thread(self.notify, _message(exc), title=f"Cannot {action}", severity="error")

    def launch_run(self, path: str, experiment: str, overrides: list[str], executor: str | None) -> None:
        self.notify(f"launching {experiment}…")
        self._launch(path, experiment, overrides, executor)

    @work(thread=True, exit_on_error=False, group="launch")
    def _launch(self, path: str, experiment: str, overrides: list[str], executor: str | None) -> None:
        wb = self.workbench
        try:
            run = wb.launch(path, experiment, overrides, executor=executor)
            wb.follow_in_background(run["id"])
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self.notify, _message(exc), title="Launch failed", severity="error", timeout=10)
            return
        self.call_from_thread(self._open_run, run["id"])

    def _open_run(self, run_id: str) -> None:
        from workbench.tui.screens.run_detail import RunDetailScreen

        self.notify(f"run {run_id} started", title="Launched")
        self.switch_mode("runs")
        self.push_screen(RunDetailScreen(run_id))


def _message(exc: Exception) -> str:
    """One line for a notification: ours as written, anything else with its type."""
    from workbench.failures import explain
    from workbench.tui.formatting import escape

    if isinstance(exc, WorkbenchError):
        return escape(str(exc))
    text = str(exc).splitlines()[0] if str(exc) else ""
    return escape(explain(exc) or f"{type(exc).__name__}: {text}"[:300])


def _screen(module: str, name: str) -> Any:
    """Screens other than the Dashboard are imported when first shown: a faster first frame."""
    import importlib

    return getattr(importlib.import_module(f"workbench.tui.screens.{module}"), name)()


def run_app(workbench: Any) -> int:
    WorkbenchApp(workbench).run()
    return 0
