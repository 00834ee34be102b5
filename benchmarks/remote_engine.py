"""A Docker engine on an SSH host: docker-py over our channels (`docker system dial-stdio` on the host, one
session channel per HTTP connection) vs the docker CLI run over an exec channel vs the local engine direct.
The "host" is a loopback sshd in front of this machine's own engine, so the figures are the transport's
cost, not a network's.

    python benchmarks/remote_engine.py [-n 10] [--pings 200] [--lines 200000]
Prints medians (ms) of: a ping; a busybox `true` run (create, start, wait, remove); and read_logs of a
finished container's --lines lines (2 streams over SSH vs the same over the local socket).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

import docker  # noqa: E402

from sshd_hosts import trusted_loopback_host  # noqa: E402
from workbench.execution.backends.docker import DockerExecutor  # noqa: E402
from workbench.execution.base import BackendSettings, Handle, Machine  # noqa: E402
from workbench.execution.hosts import LocalHost  # noqa: E402
from workbench.machines.docker_ssh import docker_client_over  # noqa: E402
from workbench.machines.ssh import Connection  # noqa: E402

IMAGE = "busybox:latest"
LABEL = "wb-bench-remote-engine"


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def run_api(client) -> None:
    """What containers.run(remove=True) does for a detached-less `true`, with the low-level API."""
    api = client.api
    container = api.create_container(IMAGE, ["true"], labels={LABEL: "1"})["Id"]
    api.start(container)
    assert api.wait(container)["StatusCode"] == 0
    api.remove_container(container)


def run_cli(connection: Connection) -> None:
    status, _, err = connection.run(["docker", "run", "--rm", "--label", f"{LABEL}=1", IMAGE, "true"], timeout=60)
    assert status == 0, err


def ping_cli(connection: Connection) -> None:
    status, _, err = connection.run(["docker", "version", "--format", "{{.Server.APIVersion}}"])
    assert status == 0, err


def read_all_logs(client, container_id: str) -> int:
    executor = DockerExecutor(Machine("local", "local"), LocalHost(None), BackendSettings("bench", docker_client=lambda: client))
    return sum(chunk.data.count(b"\n") for chunk in executor.read_logs(
        Handle("/nonexistent", "local", container=container_id), "", follow=False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10, help="container runs per way")
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()

    local = docker.from_env(timeout=60)
    root = Path(tempfile.mkdtemp(prefix="wb-bench-engine-"))
    host, connection = trusted_loopback_host(root, "engine")
    result: dict[str, object] = {}
    try:
        result["ssh_connect_ms"] = round(timed(connection.transport), 1)
        holder = {}
        result["client_over_ssh_ms"] = round(timed(lambda: holder.setdefault("c", docker_client_over(connection))), 1)
        remote = holder["c"]
        for client in (remote, local):
            client.ping()
            run_api(client)  # warm: the image's layers, the pool's connection
        ping_cli(connection)

        pings: dict[str, list[float]] = {"over_ssh": [], "cli_over_ssh": [], "local": []}
        for i in range(args.pings):
            pings["over_ssh"].append(timed(remote.ping))
            pings["local"].append(timed(local.ping))
            if i < max(args.n * 2, 20):
                pings["cli_over_ssh"].append(timed(lambda: ping_cli(connection)))
        result["ping_ms"] = {way: median_ms(s) for way, s in pings.items()}

        runs: dict[str, list[float]] = {"over_ssh": [], "cli_over_ssh": [], "local": []}
        for _ in range(args.n):  # interleaved, so drift hits each way alike
            runs["over_ssh"].append(timed(lambda: run_api(remote)))
            runs["cli_over_ssh"].append(timed(lambda: run_cli(connection)))
            runs["local"].append(timed(lambda: run_api(local)))
        result["run_true_ms"] = {way: median_ms(s) for way, s in runs.items()}

        logger = local.containers.run(IMAGE, ["sh", "-c", f"seq 1 {args.lines}; seq 1 {args.lines // 4} >&2"],
                                      detach=True, labels={LABEL: "1"})
        logger.wait()
        expected = args.lines + args.lines // 4
        reads: dict[str, list[float]] = {"over_ssh": [], "local": []}
        for _ in range(3):
            for way, client in (("over_ssh", remote), ("local", local)):
                started = time.perf_counter()
                assert read_all_logs(client, logger.id) == expected
                reads[way].append(time.perf_counter() - started)
        result["read_logs"] = {way: {"lines": expected, "seconds": round(statistics.median(s), 3),
                                     "lines_per_s": int(expected / statistics.median(s))}
                               for way, s in reads.items()}
        result["n"] = {"runs": args.n, "pings": args.pings}
    finally:
        for container in local.containers.list(all=True, filters={"label": LABEL}):
            container.remove(force=True)
        connection.close()
        host.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
