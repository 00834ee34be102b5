"""The fleet: this workstation and every SSH host, live — a bar per GPU for utilization and memory,
5-minute sparklines, temperature, power, connection state and cost. Keys add, trust and remove hosts."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from workbench.formatting import size
from workbench.tui.cells import escape
from workbench.tui.screens.add_machine import AddMachineScreen
from workbench.tui.screens.base import BaseScreen, PaletteCommand
from workbench.tui.screens.confirm import ConfirmScreen
from workbench.tui.screens.dashboard import machine_summary
from workbench.tui.screens.machine_detail import MachineDetailScreen
from workbench.tui.widgets.gauges import bar, sparkline

STATE_STYLE = {"connected": "green", "connecting": "yellow", "reconnecting": "yellow", "unreachable": "red",
               "auth failed": "red", "host key unknown": "magenta", "host key changed": "bold red"}


class FleetSampled(Message):
    def __init__(self, seq: int, local: Any, machines: list[Any],
                 live: dict[str, dict[str, Any]], holders: dict[tuple[str, str], str] | None = None) -> None:
        super().__init__()
        self.seq, self.local, self.machines, self.live = seq, local, machines, live
        self.holders = holders or {}  # (machine, GPU uuid) -> the Workbench run holding it


def cluster_block(machine: Any, cluster: dict[str, Any]) -> str:
    lines = [f"[b]{escape(machine.name)}[/b]  Slurm cluster via {escape(machine.address)}"]
    if cluster.get("error"):
        lines.append(f"  [yellow]{escape(cluster['error'])}[/]")
    for name, part in cluster.get("partitions", {}).items():
        nodes = ", ".join(f"{n} {escape(state)}" for state, n in sorted(part["nodes"].items()))
        gpus = (f" · GPUs {part['gpus'] - part['gpus_used']} free of {part['gpus']}" if part["gpus"] else "")
        lines.append(f"  {escape(name)}{' (default)' if part['default'] else ''}: {nodes}{gpus}")
    return "\n".join(lines)


def host_block(machine: Any, live: dict[str, Any] | None,
               holders: dict[tuple[str, str], str] | None = None) -> str:
    if live and "cluster" in live:
        return cluster_block(machine, live["cluster"])
    state = live["state"] if live else "connecting"
    cost = f" · ${machine.hourly_cost:.2f}/h" if machine.hourly_cost is not None else ""
    lines = [f"[b]{escape(machine.name)}[/b]  [{STATE_STYLE.get(state, '')}]● {state}[/]  "
             f"{escape(machine.address)}{cost}"]
    if live and live.get("detail") and state != "connected":
        lines.append(f"  [dim]{escape(live['detail'])}[/]")
    if live and live.get("cpu_only"):
        lines.append("  no NVIDIA GPU (a CPU machine)")
    for gpu in (live or {}).get("gpus", []):
        mem_pct = None if not gpu.memory_total or gpu.memory_used is None else 100 * gpu.memory_used / gpu.memory_total
        temp = "n/a" if gpu.temperature is None else f"{gpu.temperature:.0f}°C"
        power = "n/a" if gpu.power is None else f"{gpu.power:.0f}"
        limit = "n/a" if gpu.power_limit is None else f"{gpu.power_limit:.0f}W"
        util = "n/a" if gpu.utilization is None else f"{gpu.utilization:3.0f}%"
        lines.append(f"  GPU{gpu.index} {escape(gpu.name[:22]):<22} util {bar(gpu.utilization)} {util} "
                     f"{sparkline(live['util_history'].get(gpu.index, []), 16)}")
        lines.append(f"  {'':<27} mem  {bar(mem_pct)} {size(gpu.memory_used)} / {size(gpu.memory_total)} "
                     f"· {temp} · {power}/{limit}")
        holder = (holders or {}).get((machine.name, gpu.uuid))
        if holder:
            lines.append(f"  {'':<27} [b]held by run {escape(holder)}[/b]")
        procs = (live or {}).get("processes", {}).get(gpu.uuid, [])
        if procs:
            lines.append("  " + " " * 27 + " " + escape(", ".join(
                f"{p['pid']} {p['name']} {size(p['memory'])}" for p in procs[:4])))
    sampled = {gpu.uuid for gpu in (live or {}).get("gpus", [])}
    for (name, uuid), run_id in sorted((holders or {}).items()):  # not sampled now (the host does not answer)
        if name == machine.name and uuid not in sampled:
            lines.append(f"  {escape(uuid)} [b]held by run {escape(run_id)}[/b]")
    return "\n".join(lines)


class MachinesScreen(BaseScreen):
    MODE = "machines"
    REFRESH_SECONDS = 1.0
    BINDINGS = [
        Binding("enter", "open", "Details", id="machines.open"),
        Binding("a", "add", "Add host", id="machines.add"),
        Binding("t", "trust", "Trust key", id="machines.trust"),
        Binding("d", "remove", "Remove", id="machines.remove"),
        Binding("j,down", "next", "Next", show=False, id="machines.next"),
        Binding("k,up", "previous", "Previous", show=False, id="machines.previous"),
        Binding("r", "restart_fleet", "Reconnect", id="machines.reconnect"),
    ]
    DEFAULT_CSS = """
    MachinesScreen .host { border: round $panel-lighten-2; padding: 0 1; height: auto; }
    MachinesScreen .host.selected { border: round $accent; }
    MachinesScreen .hint { color: $text-muted; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []  # the SSH machines, in the order of their cards
        self.cards: dict[str, Static] = {}  # machine name -> its card, while it is mounted
        self.selected = 0
        self._seq = 0  # samples asked for; an answer older than the one shown is dropped
        self._shown = 0

    def compose_body(self) -> ComposeResult:
        yield Static("a add SSH host · t trust its key · enter details · d remove · r reconnect",
                     classes="hint")
        # Not focusable: its own up/down would scroll it instead of moving the selection, which scrolls it.
        yield VerticalScroll(Static("sampling…", id="local", classes="host"), id="fleet", can_focus=False)

    def reload(self) -> None:
        self._seq += 1
        self.sample(self._seq)

    @work(thread=True, exclusive=True, exit_on_error=False, group="machines")
    def sample(self, seq: int) -> None:
        wb = self.workbench
        machines = [m for m in wb.list_machines() if m.kind in ("ssh", "slurm")]
        fleet = self.app.fleet  # type: ignore[attr-defined]
        live = fleet.snapshot() if fleet is not None else {}
        for m in machines:
            if m.kind == "slurm":  # a cluster: what its scheduler says, not its login node's telemetry
                live[m.name] = {"cluster": wb.cluster(m.name)}
        self.post_message(FleetSampled(seq, wb.local_machine(), machines, live, wb.gpu_holders()))

    async def on_fleet_sampled(self, message: FleetSampled) -> None:
        # An exclusive worker that was superseded still posts its answer: never paint it over a newer one.
        if message.seq < self._shown:
            return
        self._shown = message.seq
        self.query_one("#local", Static).update(machine_summary(message.local, message.holders))
        await self._sync_cards(message.machines)
        for machine in message.machines:
            self.cards[machine.name].update(host_block(machine, message.live.get(machine.name),
                                                          message.holders))
        self._restart_fleet_if_stale()

    async def _sync_cards(self, machines: list[Any]) -> None:
        """Cards by difference: hosts gone are removed (and the removal awaited, so a host re-added under
        the same name gets a fresh card with its id free again), new ones mounted, the rest kept; the order
        follows the machine list. The selection stays on the same host when it can."""
        names = [m.name for m in machines]
        if names == self.names:
            return
        container = self.query_one("#fleet", VerticalScroll)
        current = self.current()
        gone = [self.cards.pop(name) for name in self.names if name not in names]
        if gone:
            await container.remove_children(gone)
        new = []
        for name in names:
            if name not in self.cards:
                self.cards[name] = Static(id=card_id(name), classes="host remote")
                new.append(self.cards[name])
        if new:
            await container.mount_all(new)
        previous: Widget = self.query_one("#local", Static)
        for name in names:  # put the cards in the list's order (new ones were mounted at the end)
            card = self.cards[name]
            if container.children.index(card) != container.children.index(previous) + 1:
                container.move_child(card, after=previous)
            previous = card
        self.names = names
        index = names.index(current) if current in names else min(self.selected, len(names) - 1)
        self._select(max(0, index), scroll=False)

    def _select(self, index: int, scroll: bool = True) -> None:
        self.selected = index
        for position, name in enumerate(self.names):
            self.cards[name].set_class(position == index, "selected")
        if scroll and self.names:
            self.cards[self.names[index]].scroll_visible(animate=False)

    def _restart_fleet_if_stale(self) -> None:
        """Hosts added or removed elsewhere (the CLI, another app): the fleet is rebuilt from the machine
        list, once; while a rebuild is under way its samplers are not there yet, so none is asked again."""
        fleet = self.app.fleet  # type: ignore[attr-defined]
        streaming = set(getattr(fleet, "samplers", {})) if fleet is not None else set()
        if set(self.names) == streaming:
            return
        if any(worker.group == "fleet" and not worker.is_finished for worker in self.app.workers):
            return
        self.app.restart_fleet()  # type: ignore[attr-defined]

    def current(self) -> str | None:
        return self.names[self.selected] if self.names else None

    def action_next(self) -> None:
        if self.names:
            self._select((self.selected + 1) % len(self.names))

    def action_previous(self) -> None:
        if self.names:
            self._select((self.selected - 1) % len(self.names))

    def action_open(self) -> None:
        name = self.current()
        if name:
            self.app.push_screen(MachineDetailScreen(name))

    def action_add(self) -> None:
        def added(answer: dict[str, str] | None) -> None:
            if answer:
                self.add_machine(answer)
        self.app.push_screen(AddMachineScreen(), added)

    @work(thread=True, exit_on_error=False, group="machines-edit", name="Cannot add machine")
    def add_machine(self, answer: dict[str, str]) -> None:
        result = self.workbench.add_machine(answer["name"], ssh=answer["ssh"] or None,
                                            identity=answer.get("identity") or None)
        note = (f"host key {result.key_type} {result.fingerprint} is not trusted yet: press t"
                if result.state == "host key unknown" else result.error or result.state)
        self.app.call_from_thread(self.notify, note, title=f"Added {result.name}")
        self.app.call_from_thread(self._edited)

    def action_trust(self) -> None:
        name = self.current()
        if name:
            self.fetch_key(name)

    @work(thread=True, exit_on_error=False, group="machines-edit", name="Cannot reach the host")
    def fetch_key(self, name: str) -> None:
        verdict = self.workbench.host_key(name)  # the host asked: in this worker, never on the event loop
        self.app.call_from_thread(self._ask_trust, name, verdict)

    def _ask_trust(self, name: str, verdict: Any) -> None:
        if verdict.state == "known":
            self.notify(f"{name}: {verdict.key_type} {verdict.fingerprint} is already trusted")
            return
        if verdict.state == "changed":
            self.notify(f"HOST KEY CHANGED for {name}: it presents {verdict.fingerprint}, {verdict.source} has "
                        f"{verdict.known_fingerprint}. Not trusting it.", severity="error", timeout=20)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.trust(name, verdict.fingerprint)
        self.app.push_screen(ConfirmScreen(f"{name} ({verdict.entry}) presents {verdict.key_type} key\n"
                                           f"{verdict.fingerprint}\nTrust it?"), answered)

    @work(thread=True, exit_on_error=False, group="machines-edit", name="Not trusted")
    def trust(self, name: str, fingerprint: str) -> None:
        self.workbench.trust_machine(name, fingerprint=fingerprint)
        self.app.call_from_thread(self.notify, f"{name}: host key trusted")
        self.app.call_from_thread(self.app.restart_fleet)  # type: ignore[attr-defined]

    def action_remove(self) -> None:
        name = self.current()
        if not name:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.remove(name)
        self.app.push_screen(ConfirmScreen(f"Forget machine {name}?"), answered)

    @work(thread=True, exit_on_error=False, group="machines-edit", name="Cannot remove machine")
    def remove(self, name: str) -> None:
        self.workbench.remove_machine(name)
        self.app.call_from_thread(self._edited)

    def _edited(self) -> None:
        """After a host was added or removed here: new streams, and the cards at once (not on the next tick)."""
        self.app.restart_fleet()  # type: ignore[attr-defined]
        self.reload()

    def action_restart_fleet(self) -> None:
        self.app.restart_fleet()  # type: ignore[attr-defined]

    def palette_commands(self) -> list[PaletteCommand]:
        return [("Add SSH host", "register a GPU box reachable over SSH", self.action_add),
                ("Trust host key", "shows the selected host's fingerprint first", self.action_trust),
                ("Remove machine", "forget the selected host", self.action_remove),
                ("Reconnect all", "restart every telemetry stream", self.action_restart_fleet)]


def card_id(name: str) -> str:
    """A widget id for a machine's card, one per name: names may hold '.', which ids cannot, so '_' is
    written '__' and '.' '_-' (`a.b`, `a_b` and `a-b` stay three ids); anything else becomes '_x<hex>_'."""
    out = []
    for c in name:
        if c == "_":
            out.append("__")
        elif c == ".":
            out.append("_-")
        elif c.isascii() and (c.isalnum() or c == "-"):
            out.append(c)
        else:
            out.append(f"_x{ord(c):x}_")
    return "host-" + "".join(out)
