"""A deployment's containers on one Docker engine (here or on a host, through the same docker-py client):
a serving container per version, its health wait, and the proxy in front, all on the engine's default
bridge, the proxy reaching the live version by its address there (a user-defined network would need the
engine's own iptables rules to forward between containers, and an engine run without them has no embedded
DNS either).

Containers carry `workbench.kind=deployment` (so `gc` never takes them for a run's orphans) and restart
unless stopped, so a host reboot brings the live version and its proxy back; a version switched away from
is stopped, with its restart policy off, and kept for rollback."""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.registry import proxy

MODEL_DIR = "/model"
CODE_DIR = "/workspace"
Probe = Callable[[str, int, str], "int | None"]  # (address, port, path) -> HTTP status, None: no answer
PROXY_START_TIMEOUT = 15.0


def labels(instance: str, deployment: str, role: str, version: int | None = None) -> dict[str, str]:
    out = {"workbench.kind": "deployment", "workbench.instance": instance, "workbench.deployment": deployment,
           "workbench.role": role}
    if version is not None:
        out["workbench.version"] = str(version)
    return out


def proxy_name(instance: str, deployment: str) -> str:
    return f"workbench-proxy-{deployment}-{instance[:8]}"


def target_name(deployment: str, version: int) -> str:
    return f"workbench-serve-{deployment}-v{version}-{secrets.token_hex(3)}"


def get(client: Any, name: str) -> Any | None:
    import docker.errors

    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def start_target(client: Any, *, name: str, image: str, command: list[str], env: dict[str, str], code_dir: str,
                 model_path: str, model_file: str, gpu_ids: list[str], container_labels: dict[str, str]) -> Any:
    from docker.types import DeviceRequest, Mount

    mounts = [Mount(CODE_DIR, code_dir, type="bind", read_only=True),
              Mount(f"{MODEL_DIR}/{model_file}", model_path, type="bind", read_only=True)]
    kwargs: dict[str, Any] = dict(image=image, command=command, name=name, detach=True, labels=container_labels,
                                  environment=env, working_dir=CODE_DIR, mounts=mounts, init=True,
                                  restart_policy={"Name": "unless-stopped"})
    if gpu_ids:
        kwargs["device_requests"] = [DeviceRequest(device_ids=gpu_ids, capabilities=[["gpu"]])]
    try:
        return client.containers.run(**kwargs)
    except Exception as exc:
        gone = get(client, name)
        if gone is not None:
            gone.remove(force=True)
        raise WorkbenchError(f"the serving container did not start: {_first_line(exc)}") from None


def health_path(container: Any) -> str:
    return container.labels.get("workbench.health", "/health")


def address(container: Any) -> str | None:
    """Its address on the engine's bridge (it changes when the container restarts: the proxy follows)."""
    container.reload()
    settings = container.attrs.get("NetworkSettings", {})
    found = settings.get("IPAddress") or next((n.get("IPAddress") for n in (settings.get("Networks") or {}).values()
                                               if n.get("IPAddress")), None)
    return found or None


def last_log_line(container: Any) -> str:
    try:
        lines = container.logs(tail=5).decode(errors="replace").strip().splitlines()
    except Exception:  # noqa: BLE001 - only a detail of the message
        return ""
    return lines[-1][:200] if lines else ""


def wait_healthy(container: Any, probe: Probe, timeout: float, progress: Callable[[str], None]) -> float:
    """Seconds until its health path (label workbench.health) answered 200 on its port (workbench.port);
    raises (one line: crashed, or never healthy) otherwise."""
    port, path = int(container.labels.get("workbench.port", "8000")), health_path(container)
    started = time.monotonic()
    said = 0.0
    last: int | None = None
    while True:
        container.reload()
        if container.status in ("exited", "dead") or container.attrs.get("State", {}).get("Restarting"):
            code = container.attrs.get("State", {}).get("ExitCode")
            tail = last_log_line(container)
            raise WorkbenchError(f"the new version exited at start (code {code})" + (f": {tail}" if tail else ""))
        where = address(container)
        if where:
            last = probe(where, port, path)
            if last == 200:
                return time.monotonic() - started
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            answer = f"last answer HTTP {last}" if last else "it never answered"
            raise WorkbenchError(f"the new version did not answer {path} with 200 within {timeout:.0f} s ({answer})")
        if elapsed - said >= 10:
            said = elapsed
            progress(f"waiting for {path} to answer 200 ({elapsed:.0f} s of {timeout:.0f} s)")
        time.sleep(0.2)


def upstream(container: Any) -> str:
    """The serving container's address and port on the deployments network."""
    where = address(container)
    if not where:
        raise WorkbenchError(f"{container.name} has no address on the engine's bridge (is it running?)")
    return f"{where}:{container.labels.get('workbench.port', '8000')}"


def ensure_proxy(client: Any, name: str, port: int, serving: Any, container_labels: dict[str, str],
                 probe: Probe) -> tuple[Any, bool]:
    """The proxy, running, serving the container `serving` (created, or started again, as needed, and then
    waited for until it answers: a published port accepts connections before Caddy listens, and resets
    them); True when it was (re)started here rather than found running."""
    import docker.errors

    found = get(client, name)
    if found is not None and found.status == "running":
        return found, False
    if found is None:
        found = client.containers.create(
            proxy.IMAGE, ["caddy", "run", "--config", proxy.CONFIG], name=name, labels=container_labels,
            ports={f"{proxy.LISTEN}/tcp": port}, restart_policy={"Name": "unless-stopped"})
    else:
        found.update(restart_policy={"Name": "unless-stopped"})
    proxy.write_config(found, upstream(serving), serving.name)
    try:
        found.start()
    except docker.errors.APIError as exc:
        message = _first_line(exc)
        if "address already in use" in message or "port is already allocated" in message:
            found.remove(force=True)
            raise WorkbenchError(f"port {port} is in use on the machine", hint="pick another with --port") from None
        raise WorkbenchError(f"the proxy did not start: {message}") from None
    _wait_answering(found, probe, health_path(serving))
    return found, True


def _wait_answering(container: Any, probe: Probe, path: str, timeout: float = PROXY_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        if container.status != "running":
            raise WorkbenchError(f"the proxy {container.name} stopped at start: {last_log_line(container) or container.status}")
        where = address(container)
        if where and probe(where, proxy.LISTEN, path) is not None:
            return
        if time.monotonic() > deadline:
            raise WorkbenchError(f"the proxy {container.name} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def stop_keep(container: Any) -> None:
    """Stopped and kept (for rollback), not brought back by a reboot."""
    container.update(restart_policy={"Name": "no"})
    container.stop(timeout=10)


def start_again(container: Any) -> None:
    container.update(restart_policy={"Name": "unless-stopped"})
    container.start()


def _first_line(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
