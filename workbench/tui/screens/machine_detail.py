"""One machine in full: every GPU field (n/a where unsupported), its processes, a wider utilization
history, and a one-shot sample of CPU, memory and the Docker engine's GPU runtime."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from workbench.formatting import size
from workbench.tui.cells import escape
from workbench.tui.screens.base import BaseScreen
from workbench.tui.widgets.gauges import sparkline


class MachineDetailLoaded(Message):
    def __init__(self, stats: Any, error: str | None, live: dict[str, Any] | None,
                 holders: dict[tuple[str, str], str] | None = None) -> None:
        super().__init__()
        self.stats, self.error, self.live = stats, error, live
        self.holders = holders or {}  # (machine, GPU uuid) -> the Workbench run holding it


def _na(value: Any, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"


class MachineDetailScreen(BaseScreen):
    MODE = "machines"
    REFRESH_SECONDS = 5.0
    BINDINGS = [Binding("escape", "back", "Back", id="machine_detail.back")]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.machine = name

    def compose_body(self) -> ComposeResult:
        yield VerticalScroll(Static(f"sampling {escape(self.machine)}…", id="machine-detail"))

    def reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="machine-detail")
    def load(self) -> None:
        fleet = self.app.fleet  # type: ignore[attr-defined]
        live = (fleet.snapshot() if fleet else {}).get(self.machine)
        try:
            stats, error = self.workbench.machine_stats(self.machine), None
        except Exception as exc:  # noqa: BLE001 - shown on the screen
            stats, error = None, str(exc)
        self.post_message(MachineDetailLoaded(stats, error, live, self.workbench.gpu_holders()))

    def on_machine_detail_loaded(self, message: MachineDetailLoaded) -> None:
        lines = [f"[b]{escape(self.machine)}[/b]"]
        if message.live:
            lines.append(f"connection: {message.live['state']}"
                         + (f" — {escape(message.live['detail'])}" if message.live.get("detail") else ""))
        if message.error:
            lines.append(f"[red]{escape(message.error)}[/]")
        stats = message.stats
        if stats:
            load = " ".join(f"{x:.2f}" for x in stats.load) if stats.load else "n/a"
            lines.append(f"CPUs {_na(stats.cpus)} · load {load} · memory {size(stats.memory_used)} / "
                         f"{size(stats.memory_total)}")
            if stats.engine_asked:
                runtime = {True: "NVIDIA runtime present", False: "no GPU runtime", None: "runtime unknown"}
                lines.append(f"Docker {escape(str(stats.docker or 'not installed'))}"
                             + (f" · {runtime[stats.gpu_runtime]}" if stats.docker else ""))
        gpus = (stats.gpus if stats else None) or []
        if not gpus and not message.error:  # a host that did not answer told nothing about its GPUs
            lines.append(f"no GPUs ({escape(str((stats.gpu_error if stats else None) or 'none found'))})")
        history = (message.live or {}).get("util_history", {})
        processes = (message.live or {}).get("processes", {})
        for gpu in gpus:
            lines.append(f"\n[b]GPU{gpu['index']}[/b] {escape(gpu['name'])}  {gpu['uuid']}")
            lines.append(f"  util {_na(gpu.get('utilization'), '%')} · memory {size(gpu.get('memory_used'))} / "
                         f"{size(gpu.get('memory_total'))} · temp {_na(gpu.get('temperature'), '°C')} · "
                         f"power {_na(gpu.get('power'), 'W')} / {_na(gpu.get('power_limit'), 'W')} · "
                         f"fan {_na(gpu.get('fan'), '%')} · MIG {_na(gpu.get('mig'))} · driver {_na(gpu.get('driver'))}")
            lines.append(f"  5 min  {sparkline(history.get(gpu['index'], []), 60)}")
            holder = message.holders.get((self.machine, gpu["uuid"]))
            if holder:
                lines.append(f"  [b]held by run {escape(holder)}[/b]")
            procs = processes.get(gpu["uuid"]) or gpu.get("processes") or []
            for proc in procs:
                lines.append(escape(f"  pid {proc['pid']} {proc.get('name', '')} {size(proc.get('memory'))}"))
        sampled = {gpu["uuid"] for gpu in gpus}
        for (name, uuid), run_id in sorted(message.holders.items()):  # not sampled now (the host does not answer)
            if name == self.machine and uuid not in sampled:
                lines.append(f"\n{escape(uuid)}  [b]held by run {escape(run_id)}[/b]")
        self.query_one("#machine-detail", Static).update("\n".join(lines))

    def action_back(self) -> None:
        self.app.pop_screen()
