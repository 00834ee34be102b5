"""Runs as containers on a Docker engine, through docker-py. Logs come from the engine's log API; metrics
and artifacts from the run's output dir, mounted into the container."""

from __future__ import annotations

import queue
import threading
import time
import posixpath
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from workbench.errors import NoGpuRuntime, WorkbenchError
from workbench.execution.base import (METRICS_FILE, BackendSettings, Chunk, Handle, Launch, Machine, RunState, metrics_path,
                                      redrawn_tail, signal_reason)
from workbench.logformat import format_line, stamp_to_ns
from workbench.execution import runtime
from workbench.execution.loglines import LineAssembler

if TYPE_CHECKING:
    from workbench.execution.hosts import Host

SNAPSHOT_TARGET = "/wb/src"
OUTPUT_TARGET = "/wb/out"
LOG_BATCH_BYTES = 1 << 20
LOG_BATCH_SECONDS = 0.25
SINCE_MARGIN_NS = 1_000_000_000
PROGRESS_POLL = 0.1
PROGRESS_TAIL = 8192


def _short(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None) or str(exc)
    return str(explanation).strip().splitlines()[0][:300]


class DockerExecutor:
    name = "docker"

    def __init__(self, machine: Machine, host: "Host", settings: BackendSettings) -> None:
        if settings.docker_client is None:
            raise TypeError("a Docker backend needs its machine's engine (BackendSettings.docker_client)")
        self.machine, self.instance = machine, settings.instance
        self.host = host  # where the engine is, and so the run's files: its bind mounts are paths there
        self.client = settings.docker_client()  # EngineUnavailable now, when no engine answers there

    # submit ---------------------------------------------------------------------------------------
    def submit(self, launch: Launch) -> Handle:
        import docker.errors
        from docker.types import DeviceRequest, Mount

        out = posixpath.join(launch.run_dir, "out")
        self.host.make_dirs(out)
        env = {**launch.env, "WORKBENCH_OUTPUT": OUTPUT_TARGET, "WORKBENCH_METRICS": f"{OUTPUT_TARGET}/{METRICS_FILE}"}
        mounts = [
            Mount(SNAPSHOT_TARGET, str(launch.snapshot_dir), type="bind", read_only=not launch.writable_workdir),
            Mount(OUTPUT_TARGET, out, type="bind"),
        ]
        if launch.runtime_dir:
            mounts.append(Mount(runtime.CONTAINER_PATH, launch.runtime_dir, type="bind", read_only=True))
            env = runtime.with_runtime(env, runtime.CONTAINER_PATH, self._image_env(launch.image).get("PYTHONPATH"))
        for source, target, read_only in launch.mounts:
            if not self.host.remote and not Path(source).exists():
                raise WorkbenchError(f"mount source {source} does not exist on this machine",
                                     hint="create it or fix `mounts` in workbench.toml")
            mounts.append(Mount(target, source, type="bind", read_only=read_only))
        kwargs: dict[str, Any] = dict(
            image=launch.image, command=[a.replace("{output}", OUTPUT_TARGET) for a in launch.argv],
            environment=env, working_dir=SNAPSHOT_TARGET,
            labels={"workbench.run-id": launch.run_id, "workbench.project": launch.project,
                    "workbench.kind": "run", "workbench.instance": self.instance},
            mounts=mounts, name=f"workbench-{launch.run_id}", detach=True, init=True,
        )
        if launch.user:
            kwargs["user"] = launch.user
        if launch.shm_size:
            kwargs["shm_size"] = launch.shm_size
        if launch.memory:
            kwargs["mem_limit"] = launch.memory
            kwargs["memswap_limit"] = launch.memory
        if launch.cpus:
            kwargs["nano_cpus"] = launch.cpus * 10**9
        if launch.publish:
            host_ip, container_port, host_port = launch.publish
            kwargs["ports"] = [container_port]
            kwargs["port_bindings"] = {container_port: (host_ip, host_port or None)}
        if launch.gpu_ids:
            kwargs["device_requests"] = [DeviceRequest(device_ids=launch.gpu_ids, capabilities=[["gpu"]])]
        api = self.client.api
        try:
            # The low-level API: the models' create() inspects the new container once more.
            container = api.create_container(**_create_args(api, kwargs))["Id"]
            api.start(container)
        except BaseException as exc:
            # The engine may have created it even when we never heard back (a read timeout): by name.
            self._remove_quietly(kwargs["name"])
            if not isinstance(exc, docker.errors.APIError):
                if isinstance(exc, OSError):  # requests' timeouts and connection errors
                    raise WorkbenchError(f"the Docker engine did not answer while creating the container: "
                                         f"{str(exc).splitlines()[0][:200]}",
                                         hint="check that dockerd is healthy, then run it again") from None
                raise
            message = _short(exc)
            where = "this machine" if not self.host.remote else self.host.name
            if "could not select device driver" in message:
                raise NoGpuRuntime(
                    f"the Docker engine on {where} has no GPU runtime (could not select device driver \"\" with "
                    "capabilities: [[gpu]])", hint=f"install the NVIDIA Container Toolkit on {where}, or set gpus = 0",
                ) from None
            if launch.publish and ("port is already allocated" in message or "address already in use" in message):
                raise WorkbenchError(f"port {launch.publish[2]} on {where} is already in use: {message}",
                                     hint="pick another with --port, or leave it out for a free one")
            if "bind source path does not exist" in message:
                raise WorkbenchError(f"a mount source does not exist on {where}: {message}",
                                     hint="create it there or fix `mounts` in workbench.toml")
            raise WorkbenchError(f"Docker on {where} could not start the container: {message}") from None
        port = self.published_port(container, launch.publish[1]) if launch.publish else None
        return Handle(str(launch.run_dir), self.host.name, container=container, port=port)

    def published_port(self, container: str, container_port: int | None = None) -> int | None:
        """The host port the engine bound `container_port` to (the one it picked, when asked for any); None:
        the first port the container publishes (a run publishes at most one). None when none is bound."""
        import docker.errors

        try:
            ports = (self.client.api.inspect_container(container).get("NetworkSettings") or {}).get("Ports") or {}
        except (docker.errors.APIError, OSError):
            return None
        wanted = [f"{container_port}/tcp"] if container_port is not None else sorted(ports)
        for name in wanted:
            for bound in ports.get(name) or []:
                if str(bound.get("HostPort", "")).isdigit():
                    return int(bound["HostPort"])
        return None

    def _image_env(self, image: str | None) -> dict[str, str]:
        """The environment the image sets (its PYTHONPATH must survive the runtime's)."""
        import docker.errors

        try:
            pairs = (self.client.api.inspect_image(image)["Config"] or {}).get("Env") or []
        except (docker.errors.DockerException, OSError, KeyError, TypeError):
            return {}  # creating the container says what is wrong with the image or the engine
        return dict(item.split("=", 1) for item in pairs if "=" in item)

    # state ----------------------------------------------------------------------------------------
    def _inspect(self, handle: Handle) -> dict[str, Any] | None:
        import docker.errors

        try:
            return self.client.api.inspect_container(handle.container)
        except docker.errors.NotFound:
            return None

    def status(self, handle: Handle) -> RunState:
        info = self._inspect(handle)
        if info is None:
            return RunState("missing", reason="its container no longer exists")
        state = info["State"]
        started = _docker_time(state.get("StartedAt"))
        if state["Status"] in ("created", "running", "restarting", "paused"):
            return RunState("running", started_at=started)
        code = state.get("ExitCode")
        reason = None
        if state.get("OOMKilled"):
            reason = "out of memory"
        elif code and 128 < code <= 128 + 64:  # the shell convention for "killed by signal N"
            reason = signal_reason(code - 128)
        elif state.get("Error"):
            reason = state["Error"]
        elif code and self.host.remote:  # its output dir is on the host: full there?
            reason = self.host.full_disk_reason(handle.run_dir)
        return RunState("exited", exit_code=code, reason=reason, started_at=started,
                        finished_at=_docker_time(state.get("FinishedAt")))

    # logs ---------------------------------------------------------------------------------------
    def read_logs(self, handle: Handle, offset: str, follow: bool) -> Iterator[Chunk]:
        """Offsets are per stream, `<out ns>:<count>,<err ns>:<count>`: the last timestamp consumed and
        how many records carried it. stdout and stderr are read as two streams of docker-py's public
        `logs()` (its stream drops the stream id of each frame), each from a second before the latest
        record it consumed (Docker's `since` is inclusive, and docker-py sends it as float seconds); each
        skips what it already consumed. Timestamps rise within a stream; a batch is ordered by them."""
        import docker.errors

        position = _parse_log_offset(offset)
        skip = dict(position)  # (ns, records at ns) consumed before this read, per stream
        ended_before = not follow and self.status(handle).state != "running"  # then nothing is left unread,
        # and the line the run was writing when it ended is complete (a followed run: its reader's next read)
        api = self.client.api
        streams: dict[str, Any] = {}
        try:
            for name in ("out", "err"):
                since = max(0, position[name][0] - SINCE_MARGIN_NS)
                streams[name] = api.logs(handle.container, stdout=name == "out", stderr=name == "err",
                                         timestamps=True, stream=True, follow=follow,
                                         since=since / 1e9 if since else None)
        except docker.errors.NotFound:
            _close_streams(streams)
            return
        except docker.errors.APIError as exc:
            _close_streams(streams)
            raise WorkbenchError(f"cannot read the logs of container {handle.container[:12]}: {_short(exc)}") from None
        except BaseException:
            _close_streams(streams)
            raise
        lines = {name: _RecordLines(position[name]) for name in ("out", "err")}
        last: dict[str, tuple[int, bytes]] = {}  # (ns, stamp) of each stream's latest record
        buffer: list[tuple[int, bytes]] = []
        size, flushed_at = 0, time.monotonic()
        handed_on = _format_log_offset(position)
        seconds: dict[bytes, int] = {}

        def batch() -> Chunk:
            buffer.sort(key=lambda entry: entry[0])  # stable: each stream's own order is kept
            return Chunk(b"".join(line for _, line in buffer),
                         _format_log_offset({name: record.committed for name, record in lines.items()}))

        try:
            for frame in _frames_or_idle(streams, LOG_BATCH_SECONDS):
                if frame is None:  # the streams are quiet: what is buffered is due now, not at the next line
                    if buffer:
                        yield (chunk := batch())
                        buffer, size, flushed_at, handed_on = [], 0, time.monotonic(), chunk.offset
                    continue
                stream, payload = frame
                stamp, _, text = payload.partition(b" ")
                base, _, fraction = stamp.rstrip(b"Z").partition(b".")
                try:  # stamp_to_ns, its whole-second part parsed once per second (strptime is ~10 us)
                    second = seconds.get(base)
                    if second is None:
                        if len(seconds) > 4096:
                            seconds.clear()
                        second = seconds[base] = stamp_to_ns(base.decode() + "Z")
                    ns = second + int((fraction + b"000000000")[:9])
                except ValueError:
                    continue
                seen_ns, seen_count = skip[stream]
                if ns < seen_ns:
                    continue
                if ns == seen_ns and seen_count > 0:
                    skip[stream] = (seen_ns, seen_count - 1)
                    continue
                before = position[stream]
                position[stream] = (ns, before[1] + 1) if ns == before[0] else (ns, 1)
                last[stream] = (ns, stamp)
                for done in lines[stream].feed(before, position[stream], text):
                    line = format_line(stamp.decode(), stream, done)
                    buffer.append((ns, line))
                    size += len(line)
                now = time.monotonic()
                if size >= LOG_BATCH_BYTES or now - flushed_at >= LOG_BATCH_SECONDS:
                    chunk = batch()
                    if chunk.data or chunk.offset != handed_on:  # (an offset alone: a bar is being redrawn)
                        yield chunk
                    buffer, size, flushed_at, handed_on = [], 0, now, chunk.offset
            if ended_before:  # (a followed stream may end before the engine has logged the output's last bytes)
                for stream, (ns, stamp) in last.items():  # the run has ended: so has its last line
                    buffer += [(ns, format_line(stamp.decode(), stream, done))
                               for done in lines[stream].finish(position[stream])]
            if buffer:
                yield batch()
        finally:
            _close_streams(streams)

    def progress(self, handle: Handle, stop: threading.Event) -> Iterator[str]:
        """Docker's log API holds a line back until its newline, so a progress bar redrawn with `\r` is
        read from an attach stream instead (docker-py's public `attach`; output from now on, as it is
        written). A thread keeps the tail of what came; the line is looked at every PROGRESS_POLL, so a bar
        redrawn 100,000 times a second costs no more than one redrawn 10 times (and is never shown late).
        While output is still arriving, the last redraw may be cut where a read of the stream ended: the
        one before it is shown until the output pauses. The stream closes when `stop` is set or the
        container ends."""
        import docker.errors

        try:
            stream = self.client.api.attach(handle.container, stdout=True, stderr=True, stream=True,
                                            logs=False, demux=True)
        except (docker.errors.APIError, OSError):
            return
        threading.Thread(target=lambda: (stop.wait(), stream.close()), name="attach-close", daemon=True).start()
        tails, latest = {"out": b"", "err": b""}, ["out"]
        arrived, ended = threading.Event(), threading.Event()

        def pump() -> None:
            try:
                for out, err in stream:
                    for name, data in (("out", out), ("err", err)):
                        if data:
                            tails[name] = (tails[name] + data).rsplit(b"\n", 1)[-1][-PROGRESS_TAIL:]
                            latest[0] = name
                    arrived.set()
            except (OSError, ValueError, AttributeError):
                pass  # closed under us, or the engine went away: the log stream reports that
            finally:
                ended.set()
                arrived.set()

        threading.Thread(target=pump, name="attach-progress", daemon=True).start()
        shown = ""
        try:
            while True:
                if stop.wait(PROGRESS_POLL):  # a fixed pace: a bar's every redraw would wake a wait on `arrived`
                    return
                moving = arrived.is_set() and not ended.is_set()
                arrived.clear()
                tail = tails[latest[0]]
                redraw = tail.rstrip(b"\r").rfind(b"\r")
                line = redrawn_tail(tail[:redraw] if moving and redraw > 0 else tail)
                if line != shown:
                    shown = line
                    yield line
                if ended.is_set():
                    return
        finally:
            stream.close()

    def read_metrics(self, handle: Handle, offset: str, limit: int, final: bool) -> Chunk:
        return self.host.read_from(metrics_path(handle.run_dir), offset, limit, final)

    # control --------------------------------------------------------------------------------------
    def cancel(self, handle: Handle) -> None:
        import docker.errors

        try:
            self.client.api.stop(handle.container, timeout=10)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise WorkbenchError(f"cannot stop container {handle.container[:12]}: {_short(exc)}") from None

    def _remove_quietly(self, container: str) -> None:
        import docker.errors

        try:
            self.client.api.remove_container(container, force=True)
        except (docker.errors.APIError, OSError):
            pass  # never created, or the engine is gone: reconcile and gc remove what is left

    def adopt(self, run_id: str, run_dir: str) -> Handle | None:
        """The handle of the run's container, found by its labels (its launcher died before recording it)."""
        found = self.list({"workbench.run-id": run_id, "workbench.instance": self.instance})
        if not found:
            return None
        if found[0]["state"] == "created":  # its launcher died between create and start: finish its job
            import docker.errors

            try:
                self.client.api.start(found[0]["container"])
            except docker.errors.APIError as exc:
                raise WorkbenchError(f"cannot start the container of run {run_id}: {_short(exc)}") from None
        container = found[0]["container"]
        return Handle(str(run_dir), self.host.name, container=container, port=self.published_port(container))

    def remove_orphans(self, containers: list[dict[str, Any]], active: set[str]) -> int:
        """Removes our containers that no active run owns. `active` must be read after `containers` was
        listed: a run is recorded before its container is created, so no launch is mistaken for an orphan."""
        removed = 0
        for c in containers:
            if c["run_id"] not in active:
                self._remove_quietly(c["container"])
                removed += 1
        return removed

    def list(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        return [
            {"container": c["Id"], "run_id": c["Labels"].get("workbench.run-id"), "state": c["State"]}
            for c in self.client.api.containers(all=True, filters=filters)
        ]

    def cleanup(self, handle: Handle) -> None:
        import docker.errors

        try:
            self.client.api.remove_container(handle.container, force=True)
        except docker.errors.APIError:
            pass  # already gone, or being removed; `workbench gc` collects any leftover


class _RecordLines:
    """One stream's log records joined into lines: the engine cuts a line at 16 KiB into records without a
    newline (all but the last). `committed` is the position before the record in which what is carried
    starts: a reader started there reads that line again and stores every line once."""

    def __init__(self, position: tuple[int, int]) -> None:
        self.committed = position
        self._lines = LineAssembler()
        self._records: deque[tuple[tuple[int, int], int]] = deque()  # (position before, length) of those carried
        self._carried_in = 0  # bytes of those records

    def feed(self, before: tuple[int, int], after: tuple[int, int], text: bytes) -> list[bytes]:
        done = self._lines.feed(text)
        carried = self._lines.carried
        if not carried:
            self._records.clear()
            self._carried_in, self.committed = 0, after
            return done
        self._records.append((before, len(text)))
        self._carried_in += len(text)
        while self._carried_in - self._records[0][1] >= carried:  # what is carried starts in a later record
            self._carried_in -= self._records.popleft()[1]
        self.committed = self._records[0][0]
        return done

    def finish(self, after: tuple[int, int]) -> list[bytes]:
        self._records.clear()
        self._carried_in, self.committed = 0, after
        return self._lines.finish()


def _parse_log_offset(offset: str) -> dict[str, tuple[int, int]]:
    position = {"out": (0, 0), "err": (0, 0)}
    for part, stream in zip((offset or "").split(","), ("out", "err")):
        ns, _, count = part.partition(":")
        if ns.isdigit():
            position[stream] = (int(ns), int(count or 0))
    return position


def _format_log_offset(position: dict[str, tuple[int, int]]) -> str:
    return ",".join(f"{position[s][0]}:{position[s][1]}" for s in ("out", "err"))


def _create_args(api: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    host_config = api.create_host_config(
        mounts=kwargs.pop("mounts"), init=kwargs.pop("init"), shm_size=kwargs.pop("shm_size", None),
        mem_limit=kwargs.pop("mem_limit", None), memswap_limit=kwargs.pop("memswap_limit", None),
        port_bindings=kwargs.pop("port_bindings", None),
        device_requests=kwargs.pop("device_requests", None), nano_cpus=kwargs.pop("nano_cpus", None),
    )
    kwargs.pop("detach", None)
    return {**kwargs, "host_config": host_config}


def _close_streams(streams: dict[str, Any]) -> None:
    """Closes docker-py log streams (CancellableStream.close(): a shutdown of the socket, which also wakes
    a reader blocked on a silent container); one already ended or closed is left as it is."""
    import docker.errors

    for stream in streams.values():
        try:
            stream.close()
        except (OSError, AttributeError, ValueError, docker.errors.DockerException):
            pass  # ended meanwhile (its response already released), or a transport that cannot cancel


def _frames_or_idle(streams: dict[str, Any], idle: float) -> Iterator[tuple[str, bytes] | None]:
    """(stream name, record) from each of `streams`, each read on a thread of its own, with None whenever
    none came for `idle` seconds: a batch is never held back waiting for a line that may not come for
    minutes. Ends when every stream has; an error of a stream is raised here, in the reader's thread."""
    frames: queue.Queue[Any] = queue.Queue(maxsize=4096)
    closed = threading.Event()
    end = object()

    def put(item: Any) -> bool:
        while not closed.is_set():
            try:
                frames.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def pump(name: str, stream: Any) -> None:
        outcome: Any = end
        try:
            for payload in stream:
                if not put((name, payload)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who decides
            outcome = exc
        finally:
            put(outcome)

    for name, stream in streams.items():
        threading.Thread(target=pump, args=(name, stream), name=f"docker-log-{name}", daemon=True).start()
    running = len(streams)
    try:
        while running:
            try:
                frame = frames.get(timeout=idle)
            except queue.Empty:
                yield None
                continue
            if frame is end:
                running -= 1
                continue
            if isinstance(frame, BaseException):
                if closed.is_set():
                    return
                raise frame
            yield frame
    finally:
        closed.set()


def _docker_time(value: str | None) -> float | None:
    if not value or value.startswith("0001-"):
        return None
    return stamp_to_ns(value) / 1e9
