"""The full-screen app: six screens as Textual modes over the same services as the CLI. All blocking work
(Docker, SQLite, files) runs in thread workers that post messages; handlers own the widgets."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.notifications import Notification, Notify
from textual.worker import Worker, WorkerState

from workbench.config import Config, load_config, save_config
from workbench.errors import WorkbenchError
from workbench.tui.commands import ScreenCommands
from workbench.tui.operation_notices import OperationNotices, current_worker
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.help import HelpScreen, help_rows
from workbench.tui.themes import DEFAULT_THEME, PACKAGE_THEMES, load_themes
from workbench.tui.widgets.nav_bar import SCREENS


# What a failing worker of each group was doing, for its one notification.
WORKER_TITLES = {
    "reconcile": "Checking runs", "fleet": "Machines", "telemetry-history": "Telemetry history",
    "config": "Saving config.toml", "runs-page": "Loading runs", "runs-sort-keys": "Reading the sort keys",
    "run-detail": "Loading the run",
    "dashboard": "Loading the dashboard", "projects": "Loading projects", "machines": "Loading machines",
    "machine-detail": "Sampling the machine", "launch": "Launch failed", "watch": "Watching",
    "models": "Loading models", "deployments": "Checking deployments", "deployments-health": "Deployment health",
    "ci-commits": "Loading commits",
}


# Workers started by timers: a repeated failure is said once. Anything a user asked for is always answered.
HEALTH_SECONDS = 15.0  # how often deployments' health is asked while the app runs
PERIODIC_GROUPS = frozenset({"deployments-health", "reconcile", "fleet", "telemetry-history", "runs-page", "run-detail", "dashboard",
                             "projects", "machines", "machine-detail", "models", "deployments", "ci-commits"})


class FleetReady(Message):
    def __init__(self, fleet: Any) -> None:
        super().__init__()
        self.fleet = fleet


class WatchStarted(Message):
    def __init__(self, project: str, session: Any) -> None:
        super().__init__()
        self.project, self.session = project, session


class WorkbenchApp(App[None]):
    TITLE = "Workbench"
    MODES = {"dashboard": DashboardScreen, "machines": lambda: _screen("machines", "MachinesScreen"),
             "projects": lambda: _screen("projects", "ProjectsScreen"), "runs": lambda: _screen("runs", "RunsScreen"),
             "models": lambda: _screen("models", "ModelsScreen"),
             "deployments": lambda: _screen("deployments", "DeploymentsScreen")}
    DEFAULT_MODE = "dashboard"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    BINDINGS = [
        Binding("1", "go('dashboard')", "Dashboard", show=False, id="nav.dashboard"),
        Binding("2", "go('machines')", "Machines", show=False, id="nav.machines"),
        Binding("3", "go('projects')", "Projects", show=False, id="nav.projects"),
        Binding("4", "go('runs')", "Runs", show=False, id="nav.runs"),
        Binding("5", "go('models')", "Models", show=False, id="nav.models"),
        Binding("6", "go('deployments')", "Deployments", show=False, id="nav.deployments"),
        Binding("right_square_bracket", "step_mode(1)", "Next screen", show=False, id="nav.next"),
        Binding("left_square_bracket", "step_mode(-1)", "Previous screen", show=False, id="nav.previous"),
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("colon", "command_palette", "Commands", show=False, id="app.commands"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, id="app.palette"),
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
        # Owned by the event loop: workers hand new values over in messages, never assign these.
        self.fleet: Any = None  # live telemetry of the SSH machines, while the app runs
        self.watches: dict[str, Any] = {}  # project name -> its WatchSession, while watching
        self._failing: dict[str, str] = {}  # worker group -> the failure already notified
        self.notices = OperationNotices(self)  # one notification per launch or deploy, updated in place
        # Touched only by the deployments-health worker (one at a time): each deployment's last health.
        self._health: dict[str, str | None] = {}

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
            clashes = keymap_clashes(self, self.config.keymap)
            if clashes:
                self.notify("; ".join(clashes), title="keymap: keys bound twice (first one wins)",
                            severity="warning", timeout=15)
        if self.config_error:
            self.notify(self.config_error, title="config.toml ignored", severity="error", timeout=10)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.set_interval(60, self._downsample_telemetry)
        self.set_interval(2, self._reconcile_tick)  # runs finished or vanished while away; never before a page loads
        self.set_interval(HEALTH_SECONDS, self._health_tick)
        self.workbench.progress = self.say  # the services' progress lines become notifications, not stderr

    def on_ready(self) -> None:
        self.restart_fleet()  # after the first frame: connecting (and importing paramiko) can wait a moment

    @work(thread=True, exclusive=True, exit_on_error=False, group="telemetry-history")
    def _downsample_telemetry(self) -> None:
        self.workbench.downsample_telemetry()

    def say(self, line: str) -> None:
        """A progress line from the services, from any thread: said by a worker running an operation (a
        launch, a deploy), it replaces that operation's notice; else it is a notification of its own."""
        worker = current_worker()
        if self.notices.runs_operation(worker):
            self._on_loop(lambda: self.notices.progress(worker, line))
        else:
            self._on_loop(lambda: self.notify(line))

    def say_outcome(self, message: str, title: str = "") -> None:
        """How an operation ended, from its worker's thread: it replaces the operation's notice."""
        worker = current_worker()

        def show() -> None:
            if self.notices.runs_operation(worker):
                # (the worker's name says how it fails, `Cannot cancel r12`: not the title of an outcome)
                self.notices.finish(worker, message, title=title or self.notices.title_of(worker))
            else:
                self.notify(message, title=title)
        self._on_loop(show)

    def _on_loop(self, show: Callable[[], None]) -> None:
        if threading.get_ident() == getattr(self, "_thread_id", None):
            show()
            return
        try:
            self.call_from_thread(show)
        except RuntimeError:
            pass  # the app has exited: nobody to tell

    def _health_tick(self) -> None:
        if not any(w.group == "deployments-health" and not w.is_finished for w in self.workers):
            self._check_deployments()

    @work(thread=True, exit_on_error=False, group="deployments-health")
    def _check_deployments(self) -> None:
        """Every deployment's health, asked while the app runs (whichever screen shows): a change to failing
        or back is said once."""
        wb = self.workbench
        if not wb.has_deployments():
            return
        for d in wb.deployments(check=True):
            before = self._health.get(d.name)
            self._health[d.name] = d.health
            if before is not None and d.health != before and d.health in ("failing", "errors", "ok"):
                failing = d.health in ("failing", "errors")
                self.call_from_thread(self.notify, f"{d.name}: v{d.live_version} health {d.health}",
                                      title="Deployment", severity="error" if failing else "information")

    def _reconcile_tick(self) -> None:
        # a thread cannot be cancelled: with an engine that does not answer, never pile up another one
        if not any(w.group == "reconcile" and not w.is_finished for w in self.workers):
            self._reconcile()

    @work(thread=True, exit_on_error=False, group="reconcile")
    def _reconcile(self) -> None:
        self.workbench.reconcile_if_stale()

    # workers report here: one notification per failure, none while it keeps failing the same way ------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.worker_state_changed(event.worker, event.state)

    def worker_state_changed(self, worker: Worker[Any], state: WorkerState) -> None:
        """The one place a worker's failure reaches the user (screens forward theirs here)."""
        group = worker.group
        failed = state == WorkerState.ERROR and worker.error is not None
        if state in (WorkerState.SUCCESS, WorkerState.CANCELLED, WorkerState.ERROR):
            if self.notices.worker_ended(worker, _message(worker.error) if failed else None):
                return  # an operation's failure is its notice's outcome
        if state in (WorkerState.SUCCESS, WorkerState.CANCELLED):
            self._failing.pop(group, None)
        elif failed:
            message = _message(worker.error)
            if group in PERIODIC_GROUPS:  # a refresh failing every 2 s is said once, until it recovers
                if self._failing.get(group) == message:
                    return
                self._failing[group] = message
            self.notify(message, title=self.worker_title(worker), severity="error", timeout=10)

    @staticmethod
    def worker_title(worker: Worker[Any]) -> str:
        """What a worker does, in a few words: its name when it has one, else its group's title."""
        return worker.name if worker.name and " " in worker.name else WORKER_TITLES.get(worker.group, worker.group)

    def notify(self, message: str, *, title: str = "", markup: bool = False,  # type: ignore[override]
               notice: Notification | None = None, replacing: Notification | None = None, **kwargs: Any) -> None:
        """Notifications carry text from runs, specs and hosts: plain text unless a caller asks for markup.
        `notice` (on the event loop): an operation's notice (operation_notices.py), shown at once in place of
        `replacing`. Posted as a message, it could arrive after the next line had already removed nothing."""
        if notice is not None:
            if replacing is not None:
                self._unnotify(replacing, refresh=False)  # the new notice redraws them once
            self._on_notify(Notify(notice))
            return
        if not markup:
            message, title = self.plain(message, title)
        super().notify(message, title=title, markup=markup, **kwargs)

    @staticmethod
    def plain(message: str, title: str) -> tuple[str, str]:
        """A notification's text made safe to draw (control characters shown, never sent to the terminal)."""
        from workbench.textsafe import printable

        return printable(str(message)).replace("\\n", "\n"), printable(str(title))

    # machines and watches: built and stopped in workers, owned by the event loop ----------------------
    def restart_fleet(self) -> None:
        old, self.fleet = self.fleet, None
        self._restart_fleet(old)

    @work(thread=True, exclusive=True, exit_on_error=False, group="fleet")
    def _restart_fleet(self, old: Any) -> None:
        if old is not None:
            old.stop()
        fleet = self.workbench.fleet()
        self.post_message(FleetReady(fleet.start() if fleet is not None else None))

    def on_fleet_ready(self, message: FleetReady) -> None:
        if self.fleet is not None:  # two restarts raced: keep the newest
            _stop_in_background([self.fleet])
        self.fleet = message.fleet

    def on_unmount(self) -> None:
        """Samplers and watch sessions stop on a thread of their own: quitting never waits for them
        (the thread is not a daemon, so the process still lets them finish; runs keep going)."""
        _stop_in_background([self.fleet, *self.watches.values()])
        self.fleet, self.watches = None, {}

    def toggle_watch(self, project: str, path: str) -> None:
        session = self.watches.pop(project, None)
        if session is not None:
            _stop_in_background([session])
            self.notify(f"stopped watching {project}")
            return
        self.run_worker(lambda: self._start_watch(project, path), name=f"Cannot watch {project}", group="watch",
                        thread=True, exit_on_error=False)

    def _start_watch(self, project: str, path: str) -> None:
        session = self.workbench.watch(path, lambda line: self.call_from_thread(self.notify, line, title=project))
        self.post_message(WatchStarted(project, session))

    def on_watch_started(self, message: WatchStarted) -> None:
        if message.project in self.watches:  # toggled twice while starting: keep one
            _stop_in_background([message.session])
            return
        self.watches[message.project] = message.session

    def _theme_changed(self, theme: Any) -> None:
        if theme.name != self.config.theme:
            self.config.theme = theme.name
            if self.config_error:  # never overwrite a config.toml we could not read
                self.notify("theme not saved: fix config.toml first", severity="warning")
                return
            self.persist_config()

    @work(thread=True, exit_on_error=False, group="config")
    def persist_config(self) -> None:
        save_config(self.config)

    # navigation -----------------------------------------------------------------------------------
    def action_go(self, mode: str) -> None:
        """A number key: that screen's root (the Runs list, never a run detail left open over it)."""
        self.show_root(mode)

    def show_root(self, mode: str) -> None:
        """Switches to `mode` and closes whatever was opened over its root screen (details, dialogs)."""
        self.switch_mode(mode)
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_step_mode(self, delta: int) -> None:
        modes = [mode for mode, _ in SCREENS]
        current = self.current_mode if self.current_mode in modes else modes[0]
        self.show_root(modes[(modes.index(current) + delta) % len(modes)])  # as the number keys do

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(type(self.screen).__name__.removesuffix("Screen"), help_rows(self.screen)))

    # actions on runs, shared by the screens ----------------------------------------------------------
    def run_action_on_run(self, action: str, run_id: str) -> None:
        self.run_worker(lambda: self._run_action(action, run_id), name=f"Cannot {action} {run_id}",
                        group="run-actions", thread=True, exit_on_error=False)

    def _run_action(self, action: str, run_id: str) -> None:
        wb = self.workbench
        if action == "cancel":
            run = wb.cancel(run_id)
            self.say_outcome(f"run {run.id} {run.status}")
        else:
            run = wb.rerun(run_id)
            wb.follow_in_background(run.id)
            self.say_outcome(f"run {run.id} started (rerun of {run_id})", title="Rerun")

    def launch_run(self, path: str, experiment: str, overrides: list[str], executor: str | None,
                   machine: str = "local") -> None:
        """Launches in a worker; one notification says how it goes, then the run's detail opens."""
        worker = self._launch(path, experiment, overrides, executor, machine)
        self.notices.begin(worker, "Launch", f"launching {experiment}{'' if machine == 'local' else f' on {machine}'}…")

    @work(thread=True, exit_on_error=False, group="launch")
    def _launch(self, path: str, experiment: str, overrides: list[str], executor: str | None,
                machine: str = "local") -> None:
        wb = self.workbench
        run = wb.launch(path, experiment, overrides, executor=executor, machine=machine)
        wb.follow_in_background(run.id)
        self.call_from_thread(self._open_run, run.id, current_worker())

    def deploy_model(self, ref: str, machine: str, port: int | None, name: str | None = None) -> None:
        """Deploys in a worker (a first deploy may build an image and load a model for minutes); one
        notification says how it goes; the Deployments screen opens when it serves."""
        worker = self.run_worker(lambda: self._deploy_version(ref, machine, port, name), name=f"Cannot deploy {ref}",
                                 group="deploy", thread=True, exit_on_error=False)
        self.notices.begin(worker, "Deploy", f"deploying {ref} on {machine}…")

    def _deploy_version(self, ref: str, machine: str, port: int | None, name: str | None) -> None:
        deployed = self.workbench.deploy(ref, machine, port=port, name=name)
        self.say_outcome(f"{deployed.name}: v{deployed.live_version} serving at {deployed.endpoint}",
                         title="Deployed")
        self.call_from_thread(self.show_root, "deployments")

    def register_model(self, run_id: str, artifact: str, name: str, force: bool) -> None:
        self.run_worker(lambda: self._register_version(run_id, artifact, name, force), name=f"Cannot register {name}",
                        group="register", thread=True, exit_on_error=False)

    def _register_version(self, run_id: str, artifact: str, name: str, force: bool) -> None:
        version = self.workbench.register_model(run_id, artifact, name, force)
        self.say_outcome(f"{version.name}:{version.version} from run {run_id} ({version.artifact})",
                         title="Model registered")

    def _open_run(self, run_id: str, worker: Worker[Any] | None = None) -> None:
        """After a launch (`worker`, whose notice says the outcome): the run's detail over the Runs list."""
        from workbench.tui.screens.run_detail import RunDetailScreen

        if worker is None:
            self.notify(f"run {run_id} started", title="Launched")
        else:
            self.notices.finish(worker, f"run {run_id} started", title="Launched")
        self.show_root("runs")  # one detail at a time: an earlier launch's is closed, not stacked
        self.push_screen(RunDetailScreen(run_id))

    def open_sweep(self, sweep_id: str) -> None:
        """A sweep's view over the current screen, asked for by a trial's detail (the sweep view opens trials'
        details itself, so the detail reaches it through the app: no screen imports another in a circle)."""
        from workbench.tui.screens.sweep import SweepScreen  # imported when first shown (a faster first frame)

        self.push_screen(SweepScreen(sweep_id))


_stopping: list[threading.Thread] = []


def _stop_in_background(things: list[Any]) -> None:
    """Stops samplers and watch sessions (each may take seconds) off the event loop."""
    things = [t for t in things if t is not None]
    if not things:
        return

    def stop_all() -> None:
        for thing in things:
            try:
                thing.stop()
            except Exception:  # noqa: BLE001 - e.g. a last telemetry batch after the database closed
                pass

    _stopping[:] = [t for t in _stopping if t.is_alive()]
    thread = threading.Thread(target=stop_all, name="workbench-stop")
    thread.start()
    _stopping.append(thread)


def finish_stopping(timeout: float = 30.0) -> None:
    """Waits for what the app handed off to stop (a fleet's last telemetry batch is written to the
    database then): call it after the app has exited and before closing the Workbench."""
    deadline = time.monotonic() + timeout
    while _stopping:
        _stopping.pop().join(max(0.0, deadline - time.monotonic()))


def keymap_clashes(app: App[Any], keymap: dict[str, str]) -> list[str]:
    """Keys the user's keymap binds to two different actions where both are active (the app's bindings
    and each screen's), e.g. `"runs.filter" = "slash,ctrl+f"` against the Runs screen's next page."""
    from workbench.tui.screens.base import bindings_by_screen

    remapped = {key.strip() for keys in keymap.values() for key in keys.split(",")}
    clashes = []
    for where, bindings in bindings_by_screen(app).items():
        owners: dict[str, set[str]] = {}
        for binding in bindings:
            keys = keymap.get(binding.id or "", binding.key) if binding.id else binding.key
            for key in (k.strip() for k in keys.split(",")):
                owners.setdefault(key, set()).add(binding.id or binding.action)
        for key, ids in sorted(owners.items()):
            if len(ids) > 1 and key in remapped:
                clashes.append(f"{key} on {where}: {', '.join(sorted(ids))}")
    return clashes


def _message(exc: BaseException) -> str:
    """One line for a notification (plain text): ours as written, anything else explained or with its type."""
    from workbench.failures import explain

    if isinstance(exc, WorkbenchError):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return explain(exc) or f"{type(exc).__name__}: {text}"[:300]


def _screen(module: str, name: str) -> Any:
    """Screens other than the Dashboard are imported when first shown: a faster first frame."""
    import importlib

    return getattr(importlib.import_module(f"workbench.tui.screens.{module}"), name)()


def run_app(workbench: Any) -> int:
    WorkbenchApp(workbench).run()
    finish_stopping()  # the event loop is gone: waiting here blocks nothing
    return 0
