"""A deployment's containers on one Docker engine (here or on a host, through the same docker-py client):
a serving container per version, its health wait, and the proxy in front, on a bridge network of the
deployment's own (`network_name`). A model container joins only that network and publishes nothing: on an
engine that isolates its networks (its own iptables rules, the default) no run container and no other
deployment reaches it; the proxy, on the same network, reaches it by address (an engine run without its
iptables rules has no embedded DNS) and publishes the endpoint on (bind, port).

Containers carry `workbench.kind=deployment` (so `gc` never takes them for a run's orphans) and restart
unless stopped, so a host reboot brings the live version and its proxy back; a version switched away from
is stopped, with its restart policy off, and kept for rollback."""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable

from workbench.errors import PortInUse, WorkbenchError
from workbench.serving import proxy
from workbench.serving.health import Http, Probe

MODEL_DIR = "/model"
CODE_DIR = "/workspace"
PROXY_START_TIMEOUT = 15.0
# Caddy opens its listener anew at each reload (SO_REUSEPORT) and closes the old one: with this (Linux 5.14+,
# set in the proxy's own network namespace) the connections queued on the old socket move to the new one
# instead of being reset (measured: 0 failed in 60 switches under load; 0-1 per 20 switches without).
MIGRATE = {"net.ipv4.tcp_migrate_req": "1"}


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


def network_name(instance: str, deployment: str) -> str:
    return f"workbench-deploy-{deployment}-{instance[:8]}"


def _network(client: Any, name: str) -> Any | None:
    return next((n for n in client.networks.list(names=[name]) if n.name == name), None)


def ensure_network(client: Any, instance: str, deployment: str) -> str:
    """The deployment's own bridge network (created once); its name."""
    import docker.errors

    name = network_name(instance, deployment)
    if _network(client, name) is None:
        try:
            client.networks.create(name, driver="bridge", check_duplicate=True,
                                   labels=labels(instance, deployment, "network"))
        except docker.errors.APIError as exc:
            if _network(client, name) is None:  # not a create that lost a race to another one
                raise WorkbenchError(f"the deployment's network {name} could not be created: "
                                     f"{_first_line(exc)}") from None
    return name


def remove_network(client: Any, instance: str, deployment: str) -> None:
    """Removes the deployment's network, quietly (gone already, or still used by a container kept)."""
    import docker.errors

    try:
        found = _network(client, network_name(instance, deployment))
        if found is not None:
            found.remove()
    except docker.errors.APIError:
        pass


def start_target(client: Any, *, name: str, image: str, command: list[str], env: dict[str, str], code_dir: str,
                 model_path: str, model_file: str, gpu_ids: list[str], container_labels: dict[str, str],
                 network: str, memory: int | None = None, read_only: bool = True, user: str | None = None) -> Any:
    """A version's container: on `network` alone, publishing nothing, without capabilities or a way to gain
    privileges, its memory capped at `memory` bytes, and its root file system read-only (a tmpfs on /tmp)
    unless `read_only` is off. Without capabilities even root in it reads only what it may by the files'
    modes: `user` ("uid:gid", the owner of the model and code files, e.g. the SSH login's) runs it as their
    owner (HOME is then /tmp unless env sets it), else it runs as the image's user."""
    from docker.types import DeviceRequest, Mount

    mounts = [Mount(CODE_DIR, code_dir, type="bind", read_only=True),
              Mount(f"{MODEL_DIR}/{model_file}", model_path, type="bind", read_only=True)]
    kwargs: dict[str, Any] = dict(image=image, command=command, name=name, detach=True, labels=container_labels,
                                  environment=env, working_dir=CODE_DIR, mounts=mounts, init=True,
                                  restart_policy={"Name": "unless-stopped"}, network=network,
                                  cap_drop=["ALL"], security_opt=["no-new-privileges"])
    if memory:
        kwargs["mem_limit"] = memory
    if user:
        kwargs.update(user=user, environment={"HOME": "/tmp", **env})
    if read_only:
        kwargs.update(read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,exec,mode=1777"})
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


def address(container: Any, network: str | None = None) -> str | None:
    """Its address on `network` (None: on whichever network it has one); it changes when the container
    restarts, and the proxy follows."""
    container.reload()
    settings = container.attrs.get("NetworkSettings", {})
    networks = settings.get("Networks") or {}
    if network is not None:
        return (networks.get(network) or {}).get("IPAddress") or None
    found = settings.get("IPAddress") or next((n.get("IPAddress") for n in networks.values()
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


def upstream(container: Any, network: str | None = None) -> str:
    """The serving container's address and port on `network` (its deployment's)."""
    where = address(container, network)
    if not where:
        raise WorkbenchError(f"{container.name} has no address on {network or 'its network'} (is it running?)")
    return f"{where}:{container.labels.get('workbench.port', '8000')}"


def ensure_proxy(client: Any, name: str, port: int, bind: str, plan: proxy.Plan, network: str,
                 container_labels: dict[str, str], probe: Probe) -> tuple[Any, bool]:
    """The proxy, running on `network` and publishing (bind, port): created, or started again, serving
    `plan`, and then waited for until it answers (a published port accepts connections before Caddy
    listens, and resets them); True when it was (re)started here rather than found running. A proxy found
    without `network` (made before deployments had their own) is connected to it and keeps serving."""
    found = get(client, name)
    if found is not None and found.status == "running":
        _join(client, found, network)
        return found, False
    try:
        if found is None:
            try:
                found = _create_proxy(client, name, port, bind, plan, network, container_labels, MIGRATE)
            except Exception as exc:  # a kernel before 5.14 has no tcp_migrate_req: the proxy goes without it
                if "tcp_migrate_req" not in _first_line(exc):
                    raise
                found = _create_proxy(client, name, port, bind, plan, network, container_labels, {})
        else:
            found.update(restart_policy={"Name": "unless-stopped"})
            _join(client, found, network)
            proxy.write_plan(found, plan)
            found.start()
    except Exception as exc:
        message = _first_line(exc)
        if _port_taken(message):
            _quietly_remove(get(client, name))
            raise PortInUse(f"port {port} is in use on {bind}",
                                 hint="pick another with --port (or another address with --bind)") from None
        if isinstance(exc, WorkbenchError):
            raise
        raise WorkbenchError(f"the proxy did not start: {message}") from None
    stable = plan.stable()
    _wait_answering(found, probe, stable.health if stable else "/", network)
    return found, True


def _create_proxy(client: Any, name: str, port: int, bind: str, plan: proxy.Plan, network: str,
                  container_labels: dict[str, str], sysctls: dict[str, str]) -> Any:
    """Creates and starts the proxy container (removed again when it does not start)."""
    created = client.containers.create(
        proxy.IMAGE, ["caddy", "run", "--config", proxy.CONFIG], name=name, labels=container_labels,
        ports={f"{proxy.LISTEN}/tcp": (bind, port)}, network=network, restart_policy={"Name": "unless-stopped"},
        sysctls=sysctls)
    try:
        proxy.write_plan(created, plan)
        created.start()
    except Exception:
        _quietly_remove(created)
        raise
    return created


def _port_taken(message: str) -> bool:
    return "address already in use" in message or "port is already allocated" in message


def _quietly_remove(container: Any | None) -> None:
    if container is None:
        return
    try:
        container.remove(force=True)
    except Exception:  # noqa: BLE001 - the error being reported is the one that matters
        pass


def _join(client: Any, container: Any, network: str) -> None:
    container.reload()
    if network not in (container.attrs.get("NetworkSettings", {}).get("Networks") or {}):
        client.networks.get(network).connect(container)


def _wait_answering(container: Any, probe: Probe, path: str, network: str,
                    timeout: float = PROXY_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        if container.status != "running":
            raise WorkbenchError(f"the proxy {container.name} stopped at start: {last_log_line(container) or container.status}")
        where = address(container, network)
        if where and probe(where, proxy.LISTEN, path) is not None:
            return
        if time.monotonic() > deadline:
            raise WorkbenchError(f"the proxy {container.name} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def metrics_at(http: Http, where: str) -> str | None:
    """The metrics page of the proxy at `where` (its address on the deployment's network; the listener is
    never published), None when nothing there gives it."""
    answer = http(where, proxy.METRICS_PORT, path="/metrics")
    return answer.body.decode(errors="replace") if answer is not None and answer.status == 200 else None


def read_metrics(http: Http, proxy_container: Any, network: str | None = None) -> str:
    """The proxy's metrics page (Prometheus text; see traffic.py), asked at its address on `network`."""
    where = address(proxy_container, network)
    text = metrics_at(http, where) if where else None
    if text is None:
        raise WorkbenchError(f"the proxy {proxy_container.name} did not give its traffic figures")
    return text


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
