"""Blue/green switches under load, against the real caddy:2 image alone (no Workbench): a Caddy container
publishing a port in front of one upstream container (python:3.11-slim running a tiny HTTP server like the
mnist sample's serve.py: ThreadingHTTPServer, HTTP/1.0, SIGTERM = exit), then K switches in a row, each:
start the next upstream, wait for its /health, `caddy reload` a config naming it, wait --drain seconds, stop
the old one (`docker stop`, like the deployment code). Meanwhile a load of --rate requests/s, each POST on a
new connection (urllib) with a --timeout client timeout. A no-switch baseline of the same load comes first.

Prints figures as JSON: requests sent, failed by kind (timeout, reset, refused, http-502, …) and by phase
(at the reload, at the old one's stop, elsewhere), p50/p99, failures per switch, and every failure with
its time relative to the reload and to the stop.

    python benchmarks/switch_load.py [--switches 20] [--rate 50] [--timeout 5] [--drain 2]
        [--via loopback|eth|direct] [--variant current|...] [--docker-host unix:///…]
    python benchmarks/switch_load.py --reload-only --switches 100 --gap 0.3 --rate 300   # the reload alone

--via: how clients reach the proxy: 127.0.0.1:<published> (docker-proxy, the userland proxy: the engine's
iptables DNAT skips 127.0.0.0/8), the machine's own non-loopback address (iptables DNAT), or the proxy
container's bridge address (neither). --variant picks the proxy config and the switch's step order; see
VARIANTS. --backlog: the upstream's listen backlog (5 = socketserver's default, what serve.py gets).

What it showed (issue 21; target: 0 failed over 20 switches): with Workbench's config, resets right at the
reload (Caddy 2.6 binds :80 anew with SO_REUSEPORT at each reload and closes the old socket, resetting the
connections queued in it) and 502s ~1 s after a request sent at the old container's stop (the new
upstream's accept queue of 5 overflows: see upstream_listen_drops). `--variant migrate --backlog 128`: 0.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import tempfile
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import docker

CADDY, PYTHON = "caddy:2", "python:3.11-slim"
SAMPLE = Path(__file__).resolve().parents[1] / "sample_projects" / "mnist-numpy"
LABEL = {"workbench.bench": "switch_load"}
PORT = 8000

SERVER = r"""
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
NAME = os.environ["NAME"]
class H(BaseHTTPRequestHandler):
    protocol_version = os.environ.get("PROTOCOL", "HTTP/1.0")
    def log_message(self, *a): pass
    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(200 if self.path == "/health" else 404, {"status": "ok", "served_by": NAME})
    def do_POST(self):
        data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.reply(200, {"digit": sum(data["pixels"]) % 10, "served_by": NAME})
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ThreadingHTTPServer.request_queue_size = int(os.environ["BACKLOG"])  # listen()'s backlog: socketserver's is 5
server = ThreadingHTTPServer(("0.0.0.0", 8000), H)
try:
    server.serve_forever()
finally:
    server.server_close()
"""

# name -> (proxy config changes, switch step order); "current" is what workbench/serving/proxy.py does
VARIANTS: dict[str, dict[str, Any]] = {
    "current": {},
    "no-keepalive": {"transport": {"protocol": "http", "keep_alive": {"enabled": False}}},
    "no-retry": {"load_balancing": {}},
    "server-per-switch": {"server_per_switch": True},  # each config names its server anew (metrics per version)
    "wait-idle": {"wait_idle": True},  # after the drain, stop only once the old upstream has no connection
    # Caddy 2.6 binds each config's listener anew with SO_REUSEPORT and closes the old one after the reload:
    # connections still in the old socket's accept queue are reset; this sysctl (Linux >= 5.14, per network
    # namespace) moves them to the new socket of the same reuseport group instead
    "migrate": {"sysctls": {"net.ipv4.tcp_migrate_req": "1"}},
    # and a POST reset by the upstream after it was sent (an overflowing accept queue) tried again: no fix on
    # 2.6.2, whose retry sends an empty body ("ContentLength=258 with Body length 0": more 502s, not fewer)
    "migrate-retry": {"sysctls": {"net.ipv4.tcp_migrate_req": "1"}, "buffer_requests": True,
                      "load_balancing": {"try_duration": "10s", "try_interval": "250ms",
                                         "retry_match": [{"method": ["GET", "POST"]}]}},
    # the front server on :80 over one internal server per version on 127.0.0.1 (every listener is bound
    # anew at each reload, the internal ones too)
    "front": {"front": True},
    "front-migrate": {"front": True, "sysctls": {"net.ipv4.tcp_migrate_req": "1"}},
    "front-migrate-no-keepalive": {"front": True, "sysctls": {"net.ipv4.tcp_migrate_req": "1"},
                                   "transport": {"protocol": "http", "keep_alive": {"enabled": False}}},
}


def proxy_handler(upstream: str, variant: dict[str, Any]) -> dict[str, Any]:
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": upstream}],
        "load_balancing": variant.get("load_balancing", {"try_duration": "10s", "try_interval": "250ms"}),
    }
    if "transport" in variant:
        handler["transport"] = variant["transport"]
    if variant.get("buffer_requests"):
        handler["buffer_requests"] = True
    return handler


def caddy_config(upstream: str, name: str, variant: dict[str, Any], index: int,
                 previous: str | None = None) -> dict[str, Any]:
    """One server on :80 sending every request to `upstream`; with variant "front", the :80 server sends them
    to an internal server on 127.0.0.1 (one per version, the previous version's kept beside it) instead."""
    server = f"deployment{index}" if variant.get("server_per_switch") else "deployment"
    servers: dict[str, Any] = {}
    if variant.get("front"):
        internal = {9000 + index % 2: upstream}
        if previous:
            internal[9000 + (index - 1) % 2] = previous
        for port, dial in internal.items():
            servers[f"version{port}"] = {"listen": [f"127.0.0.1:{port}"], "automatic_https": {"disable": True},
                                         "routes": [{"handle": [proxy_handler(dial, variant)]}]}
        upstream = f"127.0.0.1:{9000 + index % 2}"
    servers[server] = {"listen": [":80"], "automatic_https": {"disable": True},
                       "routes": [{"@id": name, "handle": [proxy_handler(upstream, variant)]}]}
    return {"admin": {"listen": "localhost:2019"},
            "apps": {"http": {"grace_period": variant.get("grace_period", "30s"), "servers": servers}}}


def put_config(container: Any, filename: str, document: dict[str, Any]) -> None:
    data = json.dumps(document).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(filename)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(data))
    container.put_archive("/etc/caddy", buffer.getvalue())


def address(container: Any) -> str:
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    return next(n["IPAddress"] for n in networks.values() if n.get("IPAddress"))


def probe(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)


def classify(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"http-{exc.code}"
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
        return "timeout"
    if isinstance(reason, ConnectionResetError):
        return "reset"
    if isinstance(reason, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, http.client.RemoteDisconnected) or isinstance(reason, http.client.RemoteDisconnected):
        return "closed-without-answer"
    return type(reason).__name__


class Load(threading.Thread):
    """--rate POSTs per second, each on its own thread and connection: (sent, latency, kind, served_by)."""

    def __init__(self, url: str, rate: float, timeout: float) -> None:
        super().__init__(daemon=True)
        self.url, self.rate, self.timeout = url, rate, timeout
        self.samples: list[tuple[float, float, str, str]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.body = json.dumps({"pixels": list(range(64))}).encode()

    def one(self) -> None:
        sent = time.monotonic()
        kind, served_by = "ok", ""
        try:
            request = urllib.request.Request(self.url, self.body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                served_by = json.loads(answer.read()).get("served_by", "")
        except Exception as exc:  # noqa: BLE001 - each kind is counted
            kind = classify(exc)
        with self.lock:
            self.samples.append((sent, time.monotonic() - sent, kind, served_by))

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            threading.Thread(target=self.one, daemon=True).start()
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))


class Bench:
    def __init__(self, client: Any, args: argparse.Namespace) -> None:
        self.client, self.args = client, args
        self.variant = VARIANTS[args.variant]
        self.tag = f"{os.getpid()}"
        self.count = 0
        self.proxy: Any = None
        self.spare: Any = None
        self.switches: list[dict[str, float | str]] = []

    def upstream(self) -> Any:
        self.count += 1
        name = f"switchload-{self.tag}-v{self.count}"
        if self.args.sample:
            image, command, mounts = self.sample()
        else:
            image, command, mounts = PYTHON, ["python", "-c", SERVER], []
        container = self.client.containers.run(
            image, command, name=name, detach=True, init=True, labels=LABEL, mounts=mounts,
            environment={"NAME": name, "PROTOCOL": self.args.protocol, "BACKLOG": str(self.args.backlog)})
        where = address(container)
        wait_until(lambda: probe(f"http://{where}:{PORT}/health") == 200, 30, f"{name} answering /health")
        return container

    def sample(self) -> tuple[str, list[str], list[Any]]:
        """The mnist sample's image (built by an earlier `workbench run` of it) and its serve.py, unchanged but
        for the listen backlog, serving a random model of the right shapes."""
        import numpy as np
        from docker.types import Mount

        tags = [t for image in self.client.images.list("workbench/mnist-numpy") for t in image.tags]
        if not tags:
            raise SystemExit("no workbench/mnist-numpy image: run the sample once (workbench run sample_projects/mnist-numpy)")
        model = Path(tempfile.gettempdir(), f"switchload-{self.tag}-model")
        if not (model / "model.npz").exists():
            model.mkdir(exist_ok=True)
            rng = np.random.default_rng(0)
            np.savez(model / "model.npz", W1=rng.normal(size=(64, 32)), b1=np.zeros(32), W2=rng.normal(size=(32, 10)),
                     b2=np.zeros(10))
        start = ("import http.server, os, runpy, sys; "
                 "http.server.ThreadingHTTPServer.request_queue_size = int(os.environ['BACKLOG']); "
                 "sys.argv = ['serve.py', '--model', '/model/model.npz', '--port', '8000']; "
                 "runpy.run_path('/workspace/serve.py', run_name='__main__')")
        mounts = [Mount("/workspace", str(SAMPLE), type="bind", read_only=True),
                  Mount("/model", str(model), type="bind", read_only=True)]
        return sorted(tags)[-1], ["python", "-c", start], mounts

    def start_proxy(self, first: Any) -> str:
        self.proxy = self.client.containers.create(
            CADDY, ["caddy", "run", "--config", "/etc/caddy/proxy.json"], name=f"switchload-{self.tag}-proxy",
            labels=LABEL, ports={"80/tcp": None}, sysctls=self.variant.get("sysctls"))
        put_config(self.proxy, "proxy.json", caddy_config(f"{address(first)}:{PORT}", first.name, self.variant, 0))
        self.proxy.start()
        self.proxy.reload()
        port = int(self.proxy.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        host = {"loopback": "127.0.0.1", "eth": own_address(), "direct": address(self.proxy)}[self.args.via]
        if self.args.via == "direct":
            port = 80
        url = f"http://{host}:{port}"
        wait_until(lambda: probe(f"{url}/health") == 200, 15, "the proxy answering")
        return f"{url}/predict"

    def switch(self, old: Any) -> Any:
        if self.args.reload_only:  # back and forth between two upstreams that keep running
            new, self.spare = self.spare, old
        else:
            new = self.upstream()
        index = len(self.switches) + 1
        put_config(self.proxy, "next.json", caddy_config(f"{address(new)}:{PORT}", new.name, self.variant, index,
                                                         previous=f"{address(old)}:{PORT}"))
        event: dict[str, float | str] = {"old": old.name, "new": new.name, "reload_at": time.monotonic()}
        code, output = self.proxy.exec_run(["caddy", "reload", "--config", "/etc/caddy/next.json"])
        event["reloaded_at"] = time.monotonic()
        if code != 0:
            raise SystemExit(f"caddy reload failed: {output.decode(errors='replace')[-300:]}")
        if self.args.reload_only:
            event["stop_at"] = event["stopped_at"] = event["reloaded_at"]
            self.switches.append(event)
            return new
        time.sleep(self.args.drain)
        if self.variant.get("wait_idle"):
            event["idle_wait_s"] = wait_no_connection(self.proxy, address(old), timeout=10)
        event["old_listen_drops"] = listen_drops(old)
        event["stop_at"] = time.monotonic()
        old.stop(timeout=self.args.stop_grace)
        event["stopped_at"] = time.monotonic()
        old.remove(force=True)
        self.switches.append(event)
        return new

    def cleanup(self) -> None:
        for container in self.client.containers.list(all=True, filters={"name": f"switchload-{self.tag}-"}):
            container.remove(force=True)


def wait_no_connection(proxy: Any, old_address: str, timeout: float) -> float:
    """Seconds until the proxy holds no TCP connection to the old upstream (read from /proc/net/tcp inside
    the proxy's network namespace: Caddy's own metrics in 2.6 do not split in-flight requests by upstream)."""
    hexed = "".join(f"{int(part):02X}" for part in reversed(old_address.split("."))) + f":{PORT:04X}"
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        _, output = proxy.exec_run(["cat", "/proc/net/tcp"])
        live = [line for line in output.decode().splitlines()[1:]
                if line.split()[2] == hexed and line.split()[3] == "01"]  # ESTABLISHED
        if not live:
            break
        time.sleep(0.05)
    return round(time.monotonic() - started, 2)


def listen_drops(container: Any) -> int:
    """SYNs and handshakes the container's listening sockets dropped since it started (TcpExtListenDrops of
    its network namespace: the accept queue was full, e.g. ThreadingHTTPServer's backlog of 5)."""
    code, output = container.exec_run(["cat", "/proc/net/netstat"])
    text = output.decode(errors="replace")
    if code != 0:  # caddy:2 has no cat: its namespace's counters through its pid (an engine on this machine)
        container.reload()
        try:
            with open(f"/proc/{container.attrs['State']['Pid']}/net/netstat") as counters:
                text = counters.read()
        except OSError:
            return -1
    lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1]))["ListenDrops"]) if len(lines) == 2 else -1


def own_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.254", 9))  # no packet is sent: only picks the outgoing interface's address
        return s.getsockname()[0]


def quantile(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100)[q - 1] * 1000, 1) if len(values) >= 2 else float("nan")


def phase(sent: float, switches: list[dict[str, Any]]) -> tuple[str, int | None, float | None, float | None]:
    """Which step of which switch a request sent at `sent` met: (phase, switch, s after reload, s after stop)."""
    for i, event in enumerate(switches):
        to_reload, to_stop = sent - event["reload_at"], sent - event["stop_at"]
        if -0.5 <= to_reload <= event["reloaded_at"] - event["reload_at"] + 0.5:
            return "reload", i + 1, round(to_reload, 3), round(to_stop, 3)
        if -0.5 <= to_stop <= event["stopped_at"] - event["stop_at"] + 0.5:
            return "stop", i + 1, round(to_reload, 3), round(to_stop, 3)
    return "elsewhere", None, None, None


def figures(samples: list[tuple[float, float, str, str]], switches: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [lat for _, lat, kind, _ in samples if kind == "ok"]
    failed = [(s, lat, kind) for s, lat, kind, _ in samples if kind != "ok"]
    details = []
    for sent, latency, kind in sorted(failed):
        where, index, to_reload, to_stop = phase(sent, switches)
        details.append({"kind": kind, "phase": where, "switch": index, "s_after_reload": to_reload,
                        "s_after_stop": to_stop, "latency_s": round(latency, 2)})
    late_old = 0  # answered by the version switched away from although sent after the reload returned
    for sent, _, kind, served in samples:
        last = next((e for e in reversed(switches) if e["reloaded_at"] < sent), None)
        if kind == "ok" and last is not None and served == last["old"]:
            late_old += 1
    return {
        "requests": len(samples), "failed": len(failed),
        "failed_by_kind": dict(Counter(d["kind"] for d in details)),
        "failed_by_phase": dict(Counter(d["phase"] for d in details)),
        "failed_per_switch": [sum(1 for d in details if d["switch"] == i + 1) for i in range(len(switches))],
        "switches_with_failures": sum(1 for i in range(len(switches)) if any(d["switch"] == i + 1 for d in details)),
        "p50_ms": quantile(ok, 50), "p99_ms": quantile(ok, 99), "max_ms": round(max(ok, default=0) * 1000, 1),
        "answered_by_old_after_reload": late_old,
        "failures": details[:40],
        "slow_over_1s": [{"phase": where, "switch": index, "s_after_reload": to_reload, "latency_s": round(lat, 2)}
                         for sent, lat, kind, _ in samples if kind == "ok" and lat > 1
                         for where, index, to_reload, _ in [phase(sent, switches)]][:20],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--timeout", type=float, default=5)
    parser.add_argument("--drain", type=float, default=2)
    parser.add_argument("--stop-grace", type=int, default=10, help="docker stop's SIGTERM grace (s)")
    parser.add_argument("--baseline", type=float, default=10, help="seconds of load before any switch")
    parser.add_argument("--gap", type=float, default=1, help="seconds between switches")
    parser.add_argument("--via", choices=["loopback", "eth", "direct"], default="loopback")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="current")
    parser.add_argument("--protocol", default="HTTP/1.0", help="the upstream's HTTP version (HTTP/1.1: keep-alive)")
    parser.add_argument("--backlog", type=int, default=5,
                        help="the upstream's listen backlog (5: socketserver's default, as the mnist sample's serve.py)")
    parser.add_argument("--sample", action="store_true",
                        help="the upstreams run the mnist sample's serve.py in its image (instead of the tiny server)")
    parser.add_argument("--reload-only", action="store_true",
                        help="no container started or stopped: each switch reloads Caddy onto the other of two "
                             "running upstreams (isolates the reload; use a short --gap and a high --rate)")
    parser.add_argument("--docker-host", default=os.environ.get("DOCKER_HOST"))
    parser.add_argument("--proxy-log", action="store_true", help="print the proxy's log lines that are not info")
    args = parser.parse_args()
    client = docker.DockerClient(base_url=args.docker_host) if args.docker_host else docker.from_env()
    bench = Bench(client, args)
    try:
        live = bench.upstream()
        if args.reload_only:
            bench.spare = bench.upstream()
        url = bench.start_proxy(live)
        load = Load(url, args.rate, args.timeout)
        load.start()
        time.sleep(args.baseline)
        baseline_end = time.monotonic()
        for _ in range(args.switches):
            live = bench.switch(live)
            time.sleep(args.gap)
        time.sleep(args.timeout + 0.5)
        load.stop.set()
        time.sleep(args.timeout + 0.5)
        with load.lock:
            samples = list(load.samples)
        report = {
            "engine": args.docker_host or "default", "via": args.via, "variant": args.variant,
            "upstream": "mnist sample serve.py" if args.sample else "tiny server", "protocol": args.protocol,
            "backlog": args.backlog, "rate_per_s": args.rate, "client_timeout_s": args.timeout,
            "drain_s": args.drain, "switches": args.switches, "reload_only": args.reload_only,
            "baseline": figures([s for s in samples if s[0] < baseline_end], []),
            "switching": figures([s for s in samples if s[0] >= baseline_end], bench.switches),
            "reload_s": [round(e["reloaded_at"] - e["reload_at"], 2) for e in bench.switches],
            "stop_s": [round(e["stopped_at"] - e["stop_at"], 2) for e in bench.switches],
            "upstream_listen_drops": [e["old_listen_drops"] for e in bench.switches if "old_listen_drops" in e]
            + [listen_drops(live)],
            "proxy_listen_drops": listen_drops(bench.proxy),
        }
        if bench.variant.get("wait_idle"):
            report["idle_wait_s"] = [e["idle_wait_s"] for e in bench.switches]
        if args.proxy_log:
            lines = bench.proxy.logs().decode(errors="replace").splitlines()
            report["proxy_log"] = [line[:400] for line in lines if '"level":"info"' not in line][-30:]
        print(json.dumps(report, indent=1))
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
