"""A project's commits with their CI verdicts (Projects → enter): the current branch's commits newest first,
each with its verdict, the values its checks rest on and their change against the previous evaluated commit,
and its run (enter opens it). Above them, the project's followed branches; `f` follows this branch in the
background, or stops following it."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from workbench.errors import WorkbenchError
from workbench.formatting import ago, short_value
from workbench.tui.cells import cell, escape
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.widgets.cursor import cursor_key
from workbench.tui.widgets.fitted_table import FittedTable

# (column, least width, share of the spare width): at 80 columns every column shows; "not evaluated" is 13
LAYOUT = (("commit", 8, 0), ("when", 8, 0), ("verdict", 13, 0), ("run", 8, 0), ("metrics", 16, 2),
          ("subject", 10, 3))
VERDICT_STYLE = {"PASS": "bold green", "FAIL": "bold red", "SKIP": "yellow", "cancelled": "magenta",
                 "lost": "bright_black", "skipped": "dim", "not evaluated": "dim"}
PENDING = ("running", "queued")  # drawn in the theme's accent


class CommitsLoaded(Message):
    def __init__(self, branch: str | None, commits: list[Any], branches: list[Any], problem: str | None) -> None:
        super().__init__()
        self.branch, self.commits, self.branches = branch, commits, branches  # the facade's CiCommit, CiBranch
        self.problem = problem  # why there are no commits to list (not a git repository, a detached HEAD)


def metrics_text(commit: Any) -> Text:
    """`acc=0.964 +0.012`: each value, then its change against the previous evaluated commit, green when it
    went the way its check wants (up for `>=`, down for `<=`), red when not, plain for an unchecked value."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    for name, value in commit.metrics.items():
        if text:
            text.append("  ")
        text.append(f"{name}={short_value(value)}")
        delta = commit.deltas.get(name)
        if delta:
            better = commit.better.get(name)  # a loss that falls is good news: coloured by the check's direction
            good = delta < 0 if better == "lower" else delta > 0
            text.append(f" {delta:+.3g}", style=("green" if good else "red") if better else "")
    return text if text else cell("-", "dim")


def verdict_markup(verdict: str, accent: str) -> str:
    """A verdict in its colour, for Static text (table cells take `_cells`' style)."""
    style = accent if verdict in PENDING else VERDICT_STYLE.get(verdict, "")
    return f"[{style}]{escape(verdict)}[/]" if style else escape(verdict)


def follow_line(branch: str | None, branches: list[Any], accent: str = "cyan") -> str:
    """The followed branches of the project in one line (markup), and what `f` does on this one."""
    parts = []
    for b in (b for b in branches if b.active):
        state = f"following {escape(b.branch)} (pid {b.pid})" if b.pid else \
            f"{escape(b.branch)} followed, no follower running"
        if b.last_verdict:
            state += f" · last {verdict_markup(b.last_verdict, accent)} {escape((b.last_sha or '')[:8])}"
        parts.append(state)
    followed = {b.branch for b in branches if b.active}
    if branch is not None and branch not in followed:
        parts.append("not followed: f follows this branch" if not parts else
                     f"{escape(branch)} not followed: f follows it")
    return "; ".join(parts)


class CiCommitsScreen(BaseScreen):
    MODE = "projects"
    REFRESH_SECONDS = 2.0
    BINDINGS = [
        Binding("escape", "back", "Back", id="ci_commits.back"),
        Binding("enter", "open", "Open run", id="ci_commits.open"),
        Binding("f", "toggle_follow", "Follow", id="ci_commits.follow"),
        Binding("l", "launch", "Launch", id="ci_commits.launch"),
        Binding("j", "down", "Down", show=False, id="ci_commits.down"),
        Binding("k", "up", "Up", show=False, id="ci_commits.up"),
    ]
    DEFAULT_CSS = """
    CiCommitsScreen #ci-title { height: 1; padding: 0 1; background: $boost; color: $accent; }
    CiCommitsScreen #ci-follow { height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap;
                                 text-overflow: ellipsis; }
    CiCommitsScreen #ci-follow.problem { height: auto; max-height: 3; text-wrap: wrap; }
    CiCommitsScreen #ci-commits { height: 1fr; }
    CiCommitsScreen #ci-detail { height: auto; max-height: 4; padding: 0 1; border-top: solid $primary; }
    """

    def __init__(self, project: str, path: str, experiment: str | None = None, *,
                 launch: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.project, self.path, self.experiment = project, path, experiment
        self.launch = launch  # the Projects screen's launch form for this experiment
        self.branch: str | None = None
        self.commits: dict[str, Any] = {}  # the facade's CiCommit by sha, as last loaded
        self.branches: list[Any] = []
        self.loads = 0

    def compose_body(self) -> ComposeResult:
        yield Static(escape(self.project), id="ci-title")
        yield Static("reading the commits…", id="ci-follow")
        yield FittedTable(LAYOUT, cursor_type="row", zebra_stripes=True, id="ci-commits")
        yield Static("", id="ci-detail")

    @property
    def table(self) -> FittedTable:
        return self.query_one("#ci-commits", FittedTable)

    def reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="ci-commits")
    def load(self) -> None:
        wb = self.workbench
        branch, commits, problem = None, [], None
        try:
            branch = wb.ci_current_branch(self.path)
            commits = wb.ci_list(self.path, branch=branch, experiment=self.experiment)
        except WorkbenchError as exc:  # not a git repository, no commit yet, a detached HEAD: said in place
            problem = exc.message + (f": {exc.hint}" if exc.hint else "")
        self.post_message(CommitsLoaded(branch, commits, wb.ci_branches(self.path), problem))

    def on_commits_loaded(self, message: CommitsLoaded) -> None:
        self.loads += 1
        self.branch, self.branches = message.branch, message.branches
        self.commits = {c.sha: c for c in message.commits}
        title = escape(self.project) + (f" · {escape(message.branch)}" if message.branch else "")
        self.query_one("#ci-title", Static).update(title)
        follow = self.query_one("#ci-follow", Static)
        follow.set_class(bool(message.problem), "problem")  # said whole: the folder's name can be long
        if message.problem:
            follow.update(escape(message.problem))  # muted, as the line it stands for
        else:
            follow.update(follow_line(message.branch, message.branches, self.accent())
                          or ("no commits yet" if not message.commits else ""))
        self._fill(message.commits)
        self._show_detail()

    def _fill(self, commits: list[Any]) -> None:
        table, now = self.table, self.clock()
        selected = cursor_key(table)
        wanted = {c.sha: self._cells(c, now) for c in commits}
        with self.app.batch_update():
            if list(wanted) != [k.value for k in table.rows]:
                table.clear()
                for sha, cells in wanted.items():
                    table.add_row(*cells, key=sha)
                if selected in wanted:
                    table.move_cursor(row=list(wanted).index(selected))
                return
            for sha, cells in wanted.items():
                for column, value in zip(table.columns, cells):
                    if table.get_cell(sha, column) != value:
                        table.update_cell(sha, column, value)

    def accent(self) -> str:
        return self.app.current_theme.accent or "cyan"

    def _cells(self, commit: Any, now: float) -> tuple[Text, ...]:
        style = self.accent() if commit.verdict in PENDING else VERDICT_STYLE.get(commit.verdict, "")
        return (cell(commit.short), cell(ago(commit.committed_at, now)), cell(commit.verdict, style),
                cell(commit.run_id or "-", "" if commit.run_id else "dim"), metrics_text(commit), cell(commit.subject))

    def _show_detail(self) -> None:
        """The highlighted commit whole: its subject, author, and why it failed or was skipped."""
        commit = self.selected()
        detail = self.query_one("#ci-detail", Static)
        if commit is None:
            detail.update("")
            return
        lines = [f"[b]{commit.short}[/b] {escape(commit.subject)}", f"by {escape(commit.author)}"
                 + (f" · {escape(commit.experiment)}" if commit.experiment else "")
                 + (f" · run {escape(commit.run_id)}" if commit.run_id else "")]
        if commit.reason:
            lines.append(f"[dim]{escape(commit.reason)}[/dim]")
        detail.update("\n".join(lines))

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail()

    def selected(self) -> Any | None:
        return self.commits.get(cursor_key(self.table) or "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        commit = self.selected()
        if commit is None:
            return
        if not commit.run_id:
            self.notify(f"{commit.short} has no run ({commit.verdict})", severity="warning")
            return
        from workbench.tui.screens.run_detail import RunDetailScreen

        self.app.push_screen(RunDetailScreen(commit.run_id))

    def following(self) -> Any | None:
        """This branch's follow, when it is wanted followed."""
        return next((b for b in self.branches if b.active and b.branch == self.branch), None)

    def action_toggle_follow(self) -> None:
        if self.branch is None:
            self.notify(f"{self.project}: no branch to follow", severity="warning")
            return
        if any(w.group == "ci-follow" and not w.is_finished for w in self.workers):
            return  # the last press is still being answered
        branch, followed = self.branch, self.following() is not None
        if followed:
            self.run_worker(lambda: self._stop(branch), name=f"Cannot stop following {branch}", group="ci-follow",
                            thread=True, exit_on_error=False)
        else:
            self.run_worker(lambda: self._follow(branch), name=f"Cannot follow {branch}", group="ci-follow",
                            thread=True, exit_on_error=False)

    def _follow(self, branch: str) -> None:
        followed = self.workbench.ci_detach(self.path, branch=branch, experiment=self.experiment)
        self.app.call_from_thread(self.notify, f"following {followed.branch} in the background (pid {followed.pid}):"
                                               f" each new commit runs {followed.experiment}", title="CI")
        self.load()

    def _stop(self, branch: str) -> None:
        stopped = self.workbench.ci_stop(self.path, branch)
        names = ", ".join(b.branch for b in stopped) or branch
        self.app.call_from_thread(self.notify, f"stopped following {names}", title="CI")
        self.load()

    def action_launch(self) -> None:
        if self.launch is not None:
            self.launch()

    def action_down(self) -> None:
        self.table.action_cursor_down()

    def action_up(self) -> None:
        self.table.action_cursor_up()

    def action_back(self) -> None:
        self.app.pop_screen()

    def palette_commands(self) -> list[PaletteCommand]:
        return [("Open run", "the selected commit's run", self.action_open),
                ("Follow or stop following", "run each new commit of this branch in the background",
                 self.action_toggle_follow),
                ("Launch experiment", "run the experiment from the work tree, with param overrides",
                 self.action_launch)]
