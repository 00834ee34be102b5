"""Live telemetry for the fleet view: a sampler thread per SSH host that keeps one `nvidia-smi -lms` stream
open on the host's persistent connection (no new login or process per sample), reconnects with backoff,
and reports connection states; plus the local machine through NVML. Samples land in memory (the latest
and a 5-minute ring per GPU for sparklines); readers take snapshots."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import paramiko

from workbench.machines.nvidia_smi import APPS_ARGS, QUERY_FIELDS, GpuReading, parse_apps, parse_query_line
from workbench.machines.ssh import Connection, SSHError, SSHTarget, remote_command
from workbench.machines.hostkeys import HostKeyStore

HISTORY_SECONDS = 300
PROCESSES_EVERY = 5.0  # seconds between looks at the GPUs' processes (a second channel, same connection)
BACKOFF = (1, 2, 4, 8, 15, 30)


@dataclass
class HostState:
    name: str
    state: str = "connecting"          # connected, reconnecting, auth failed, host key unknown/changed, ...
    detail: str | None = None
    gpus: list[GpuReading] = field(default_factory=list)
    cpu_only: bool = False
    updated: float = 0.0
    processes: dict[str, list[dict]] = field(default_factory=dict)  # GPU uuid -> compute processes
    util_history: dict[int, collections.deque] = field(default_factory=dict)
    memory_history: dict[int, collections.deque] = field(default_factory=dict)

    def record(self, readings: list[GpuReading], now: float) -> None:
        self.gpus, self.updated = readings, now
        for gpu in readings:
            for history, value in ((self.util_history, gpu.utilization),
                                   (self.memory_history, None if not gpu.memory_total or gpu.memory_used is None
                                    else 100.0 * gpu.memory_used / gpu.memory_total)):
                ring = history.setdefault(gpu.index, collections.deque(maxlen=HISTORY_SECONDS))
                ring.append(value)


class RemoteSampler(threading.Thread):
    def __init__(self, target: SSHTarget, hostkeys: HostKeyStore, interval_ms: int = 1000,
                 on_change: Callable[[HostState], None] | None = None) -> None:
        super().__init__(name=f"telemetry-{target.name}", daemon=True)
        self.target = target
        self.connection = Connection(target, hostkeys)
        self.interval_ms = interval_ms
        self.state = HostState(target.name)
        self.on_change = on_change or (lambda state: None)
        self._halt = threading.Event()
        self._channel: paramiko.Channel | None = None

    def stop(self) -> None:
        self._halt.set()
        channel = self._channel
        if channel is not None:
            try:
                channel.close()
            except (EOFError, OSError, paramiko.SSHException):
                pass  # the connection is already gone
        self.connection.close()

    def _set(self, state: str, detail: str | None = None) -> None:
        self.state.state, self.state.detail = state, detail
        self.on_change(self.state)

    def run(self) -> None:
        failures = 0
        while not self._halt.is_set():
            try:
                self._stream()
                failures = 0
            except SSHError as exc:
                failures += 1
                self._set(getattr(exc, "state", "unreachable") if failures == 1 or
                          getattr(exc, "state", "") != "unreachable" else "reconnecting", str(exc))
            except (paramiko.SSHException, OSError, EOFError) as exc:
                failures += 1
                self._set("reconnecting", f"{self.target.name}: connection lost: {exc}")
            self.connection.close_transport()
            if self._halt.is_set():
                return
            if self.state.state not in ("reconnecting", "unreachable", "connected"):
                delay = BACKOFF[-1]  # auth or host key problems: a person must act first
            else:
                if self.state.state == "connected":
                    self._set("reconnecting", "the stream ended")
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
            self._halt.wait(delay)

    def _stream(self) -> None:
        transport = self.connection.transport()
        channel = self._channel = transport.open_session(timeout=10)
        args = ["nvidia-smi", f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits",
                "-lms", str(self.interval_ms)]
        channel.exec_command(remote_command(args))
        self._set("connected")
        buffer, batch = b"", []
        processes_at = 0.0
        channel.settimeout(max(5.0, self.interval_ms / 1000 * 5))
        while not self._halt.is_set():
            try:
                data = channel.recv(65536)
            except TimeoutError:
                if not transport.is_active():
                    raise SSHError(f"{self.target.name}: connection dropped") from None
                continue
            if not data:
                status = channel.recv_exit_status() if channel.exit_status_ready() else None
                if status == 127 or (status is not None and not self.state.gpus and not batch):
                    self.state.cpu_only = True  # no nvidia-smi (or no GPU): a CPU machine
                    self._set("connected", "no NVIDIA GPU")
                    self._halt.wait(3600)
                    return
                raise SSHError(f"{self.target.name}: telemetry stream ended")
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                reading = parse_query_line(line.decode(errors="replace"))
                if reading is None:
                    continue
                if reading.index == 0 and batch:  # a new round begins: the previous one is complete
                    self.state.record(batch, time.time())
                    self.on_change(self.state)
                    batch = []
                batch.append(reading)
            if batch and self.state.gpus and len(batch) >= len(self.state.gpus):
                self.state.record(batch, time.time())
                self.on_change(self.state)
                batch = []
            if self.state.gpus and time.monotonic() - processes_at > PROCESSES_EVERY:
                processes_at = time.monotonic()
                code, out, _ = self.connection.run(APPS_ARGS, timeout=10)
                if code == 0:
                    self.state.processes = parse_apps(out.decode(errors="replace"))


class Fleet:
    """The samplers of every SSH machine; `snapshot()` is safe to call from any thread. With a `recorder`,
    each GPU's samples are also handed over in batches (to be kept as history)."""

    def __init__(self, targets: list[SSHTarget], hostkeys: HostKeyStore, interval_ms: int = 1000,
                 recorder: Callable[[list[tuple]], None] | None = None,
                 history: Callable[[str], dict[int, list[tuple]]] | None = None) -> None:
        self.samplers = {t.name: RemoteSampler(t, hostkeys, interval_ms) for t in targets}
        self.recorder = recorder
        self._pending: list[tuple] = []
        self._pending_lock = threading.Lock()
        for name, sampler in self.samplers.items():
            sampler.on_change = self._collect
            for gpu, points in (history(name) if history else {}).items():  # sparklines survive a restart
                sampler.state.util_history.setdefault(gpu, collections.deque(maxlen=HISTORY_SECONDS)).extend(
                    util for _, util, _ in points)

    def _collect(self, state: HostState) -> None:
        if self.recorder is None or not state.gpus or state.updated == getattr(state, "_recorded", None):
            return
        state._recorded = state.updated  # type: ignore[attr-defined]
        rows = [(state.name, g.index, state.updated, g.utilization, g.memory_used, g.temperature, g.power)
                for g in state.gpus]
        with self._pending_lock:
            self._pending.extend(rows)
            batch = self._pending if len(self._pending) >= 50 else None
            if batch is not None:
                self._pending = []
        if batch:
            self.recorder(batch)

    def flush(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
        if batch and self.recorder:
            self.recorder(batch)

    def start(self) -> "Fleet":
        for sampler in self.samplers.values():
            sampler.start()
        return self

    def stop(self) -> None:
        for sampler in self.samplers.values():
            sampler.stop()
        for sampler in self.samplers.values():
            sampler.join(timeout=5)
        self.flush()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, sampler in self.samplers.items():
            state = sampler.state
            out[name] = {"state": state.state, "detail": state.detail, "gpus": list(state.gpus),
                         "cpu_only": state.cpu_only, "updated": state.updated,
                         "processes": dict(state.processes),
                         "util_history": {i: list(r) for i, r in state.util_history.items()},
                         "memory_history": {i: list(r) for i, r in state.memory_history.items()}}
        return out
