"""The deployment proxy for real: the `caddy:2` image on this machine's engine in front of tiny model
containers on a deployment network of their own (serving.start_target: no capabilities, read-only root),
asked over loopback. Weighted split, the bearer token, per-version metrics, a dead version's fast 503, a
restart keeping the plan, network isolation, and the engine's port errors; and the config itself."""

from __future__ import annotations

import os
import http.client
import secrets
import socket
import threading
import time

import pytest

from helpers import free_port, wait_for
from workbench.errors import WorkbenchError
from workbench.serving import proxy, serving, traffic
from workbench.serving.health import local_http, local_probe

SERVER = """
import http.server, sys
model = open(sys.argv[1]).read()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = model.encode()
        self.send_response(500 if self.path == "/fail" else 200)
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.do_GET()
http.server.ThreadingHTTPServer.request_queue_size = 128  # a real server's backlog (socketserver's is 5)
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
"""


class Deployment:
    """A network, model containers on it and the proxy in front, all removed at the end."""

    def __init__(self, client, tmp_path) -> None:
        self.client, self.tmp = client, tmp_path
        self.instance, self.name = secrets.token_hex(4), f"t{secrets.token_hex(3)}"
        self.network = serving.ensure_network(client, self.instance, self.name)
        self.port = free_port()
        self.proxy = None
        self.containers: list = []
        (tmp_path / "serve.py").write_text(SERVER)

    def model(self, version: int, answer: str, user: str | None = None) -> proxy.Backend:
        model = self.tmp / f"model{version}.txt"
        model.write_text(answer)
        if user:  # the files are the login user's alone, as on a host
            uid, gid = map(int, user.split(":"))
            for path, mode in ((model, 0o400), (self.tmp / "serve.py", 0o400), (self.tmp, 0o700)):
                os.chown(path, uid, gid)
                path.chmod(mode)
        container = serving.start_target(
            self.client, name=serving.target_name(self.name, version), image="python:3.11-slim",
            command=["python3", "serve.py", f"{serving.MODEL_DIR}/model.txt", "8000"], env={},
            code_dir=str(self.tmp), model_path=str(model), model_file="model.txt", gpu_ids=[],
            container_labels={**serving.labels(self.instance, self.name, "serve", version),
                              "workbench.port": "8000", "workbench.health": "/health"},
            network=self.network, memory=64 * 1024 * 1024, user=user)
        self.containers.append(container)
        serving.wait_healthy(container, local_probe, 20, lambda _: None)
        return proxy.Backend(version, container.name, serving.upstream(container, self.network), "/health", 100)

    def serve(self, plan: proxy.Plan) -> None:
        if self.proxy is None:
            self.proxy, started = serving.ensure_proxy(
                self.client, serving.proxy_name(self.instance, self.name), self.port, "127.0.0.1", plan,
                self.network, serving.labels(self.instance, self.name, "proxy"), local_probe)
            assert started
        else:
            proxy.apply(self.proxy, plan)

    def ask(self, path: str = "/which", token: str | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return local_http("127.0.0.1", self.port, path=path, headers=headers)

    def counters(self):
        return traffic.parse(serving.read_metrics(local_http, self.proxy, self.network))

    def remove(self) -> None:
        for container in [self.proxy, *self.containers]:
            if container is not None:
                container.remove(force=True)
        serving.remove_network(self.client, self.instance, self.name)


@pytest.fixture
def deployment(docker_client, tmp_path):
    made = Deployment(docker_client, tmp_path)
    yield made
    made.remove()
    assert not docker_client.networks.list(names=[made.network])


def weighted(*backends: proxy.Backend, weights: tuple[int, ...]) -> tuple[proxy.Backend, ...]:
    return tuple(proxy.Backend(b.version, b.container, b.upstream, b.health, w) for b, w in zip(backends, weights))


def test_weights_split_by_round_robin_and_the_metrics_say_which_version_served(deployment):
    old, new = deployment.model(1, "old"), deployment.model(2, "new")
    plan = proxy.Plan(weighted(old, new, weights=(90, 10)))
    deployment.serve(plan)
    assert proxy.read_plan(deployment.proxy) == plan
    before, _ = deployment.counters()  # the proxy's start was waited for with a request
    answers = [deployment.ask() for _ in range(200)]
    assert all(a is not None and a.status == 200 for a in answers)
    bodies = [a.body for a in answers]
    assert (bodies.count(b"old"), bodies.count(b"new")) == (180, 20)  # round robin over 9 + 1 entries
    failed = [deployment.ask("/fail") for _ in range(10)]
    assert {a.status for a in failed} == {500}

    started = time.monotonic()
    now, healthy = deployment.counters()
    took = time.monotonic() - started
    print(f"metrics read and parsed in {took * 1000:.1f} ms")
    assert took < 0.2
    servers = {name: traffic.since(counters, before.get(name)) for name, counters in now.items()}
    assert servers["front"].requests == 210 and servers["front"].errors == 10
    assert servers["v1"].requests == 189 and servers["v1"].errors == 9
    assert servers["v2"].requests == 21 and servers["v2"].errors == 1
    assert healthy[old.upstream] and healthy[new.upstream]
    shown = traffic.figures(servers["v2"], 10.0)
    assert shown["requests"] == 21 and shown["errors"] == 1 and shown["rps"] == 2.1
    assert shown["p50_ms"] is not None and 0 < shown["p50_ms"] <= shown["p99_ms"]


class Load:
    """Callers POSTing until stopped: some on a new connection each time, some reusing theirs."""

    def __init__(self, port: int, fresh: int = 4, kept: int = 2) -> None:
        self.port, self.stopped = port, threading.Event()
        self.answered, self.failed, self.kept_alive = 0, [], []
        self.threads = [threading.Thread(target=self.caller, args=(False,)) for _ in range(fresh)]
        self.threads += [threading.Thread(target=self.caller, args=(True,)) for _ in range(kept)]
        for thread in self.threads:
            thread.start()

    def caller(self, reuse: bool) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self.stopped.is_set():
            try:
                conn.request("POST", "/which", body=b'{"x": 1}', headers={"Content-Type": "application/json"})
                answer = conn.getresponse()
                answer.read()
                if answer.status == 200:
                    self.answered += 1
                    self.kept_alive.append(answer.getheader("Connection"))
                else:
                    self.failed.append(answer.status)
            except (OSError, http.client.HTTPException) as exc:
                self.failed.append(repr(exc))
                conn.close()
            if not reuse:
                conn.close()
            time.sleep(0.04)

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join()


def test_twenty_switches_under_load_lose_no_proxied_request(deployment):
    """Fresh and kept-alive callers: no switch fails a request (see proxy.apply and serving.MIGRATE for what
    Caddy 2.6's reload did to them)."""
    a, b = deployment.model(1, "a"), deployment.model(2, "b")
    plans = [proxy.Plan(weighted(a, weights=(100,))), proxy.Plan(weighted(b, weights=(100,))),
             proxy.Plan(weighted(a, b, weights=(90, 10)))]
    deployment.serve(plans[0])
    load = Load(deployment.port)
    took = []
    try:
        for i in range(20):
            time.sleep(0.5)
            started = time.monotonic()
            proxy.apply(deployment.proxy, plans[(i + 1) % 3])
            took.append(time.monotonic() - started)
        time.sleep(0.5)
    finally:
        load.stop()
    print(f"20 switches: {load.answered} answered, {len(load.failed)} failed; apply took "
          f"{sorted(took)[10] * 1000:.0f} ms (median), {max(took) * 1000:.0f} ms (max)")
    if load.failed:  # what Caddy said about them
        print("\n".join(line[:400] for line in deployment.proxy.logs().decode(errors="replace").splitlines()
                        if "http.log.error" in line))
    assert load.answered > 500 and set(load.kept_alive) == {"close"}
    assert load.failed == []
    assert proxy.read_plan(deployment.proxy) == plans[20 % 3]


def test_a_token_is_required_once_the_plan_has_one_and_a_restart_keeps_the_plan(deployment):
    old, new = deployment.model(1, "old"), deployment.model(2, "new")
    deployment.serve(proxy.Plan(weighted(old, weights=(100,))))
    assert deployment.ask().body == b"old"
    token = secrets.token_urlsafe(24)
    plan = proxy.Plan(weighted(old, new, weights=(50, 50)), token=token)
    started = time.monotonic()
    deployment.serve(plan)
    print(f"caddy reload (apply) took {(time.monotonic() - started) * 1000:.0f} ms")
    refused = deployment.ask()
    assert refused.status == 401 and b"Bearer" in refused.body
    assert deployment.ask(token="wrong").status == 401
    assert sorted(deployment.ask(token=token).body for _ in range(4)) == [b"new", b"new", b"old", b"old"]

    deployment.proxy.restart(timeout=5)  # Caddy starts again from the file apply() replaced
    assert proxy.read_plan(deployment.proxy) == plan
    wait_for(lambda: deployment.ask(token=token) is not None, timeout=15)
    assert deployment.ask().status == 401
    assert sorted(deployment.ask(token=token).body for _ in range(10)) == [b"new"] * 5 + [b"old"] * 5
    servers, _ = deployment.counters()  # counted from the restart
    assert servers["front"].requests == 12 and servers["v1"].requests == 5


def test_a_stopped_model_container_gives_callers_a_fast_503(deployment, docker_client):
    only = deployment.model(1, "only")
    deployment.serve(proxy.Plan(weighted(only, weights=(100,))))
    assert deployment.ask().status == 200
    container = docker_client.containers.get(only.container)
    container.stop(timeout=5)
    stopped = time.monotonic()
    times = []
    while time.monotonic() - stopped < 4:
        sent = time.monotonic()
        answer = deployment.ask()
        times.append((sent - stopped, time.monotonic() - sent, answer.status if answer else None))
    print("after stop (sent at s, took s, status):", [(round(a, 2), round(b, 2), c) for a, b, c in times])
    assert all(status in (502, 503) for _, _, status in times)
    assert all(took <= 2.0 for _, took, _ in times)
    assert all(status == 503 for at, _, status in times if at >= 2.0)
    # Caddy 2.6 writes its active checks' verdict into the metrics every 10 s
    wait_for(lambda: deployment.counters()[1][only.upstream] is False, timeout=12, interval=0.5)
    print(f"the metrics said unhealthy {time.monotonic() - stopped:.1f} s after the stop")


def test_the_model_container_is_reached_by_its_proxy_only(deployment, docker_client):
    only = deployment.model(1, "only")
    deployment.serve(proxy.Plan(weighted(only, weights=(100,))))
    assert deployment.ask().body == b"only"
    address, port = only.upstream.split(":")
    probe = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
             "except OSError as e:\n print('unreachable', e)\nelse:\n print('reached')")
    outside = docker_client.containers.run("python:3.11-slim", ["python3", "-c", probe, address, port],
                                           remove=True)  # on the engine's default bridge, like a run
    assert outside.decode().startswith("unreachable"), outside
    attrs = docker_client.containers.get(only.container).attrs
    assert list(attrs["NetworkSettings"]["Networks"]) == [deployment.network]
    assert not attrs["HostConfig"]["PortBindings"] and attrs["HostConfig"]["ReadonlyRootfs"]
    assert attrs["HostConfig"]["CapDrop"] == ["ALL"] and attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert deployment.proxy.attrs["HostConfig"]["Sysctls"] == serving.MIGRATE


def test_files_only_their_owner_reads_are_served_by_running_as_the_owner(deployment):
    """Without capabilities, root in the container cannot read another user's 0400 files (the model and
    snapshot copies on a host are the login's alone): run as their owner it serves them."""
    only = deployment.model(1, "mine", user="1000:1000")
    deployment.serve(proxy.Plan(weighted(only, weights=(100,))))
    assert deployment.ask().body == b"mine"
    with pytest.raises(WorkbenchError, match="exited at start"):
        deployment.model(2, "theirs")  # as root without capabilities: Permission denied


def test_a_port_in_use_is_one_line_and_leaves_no_proxy(deployment):
    only = deployment.model(1, "only")
    with socket.socket() as held:
        held.bind(("127.0.0.1", deployment.port))
        held.listen()
        with pytest.raises(WorkbenchError, match=f"port {deployment.port} is in use on 127.0.0.1"):
            deployment.serve(proxy.Plan(weighted(only, weights=(100,))))
    assert serving.get(deployment.client, serving.proxy_name(deployment.instance, deployment.name)) is None


def test_an_existing_proxy_on_another_network_joins_the_deployments(deployment, docker_client):
    only = deployment.model(1, "only")
    plan = proxy.Plan(weighted(only, weights=(100,)))
    name = serving.proxy_name(deployment.instance, deployment.name)
    old = docker_client.containers.create(proxy.IMAGE, ["caddy", "run", "--config", proxy.CONFIG], name=name,
                                          ports={f"{proxy.LISTEN}/tcp": ("127.0.0.1", deployment.port)})
    deployment.proxy = old
    proxy.write_plan(old, plan)
    old.start()  # on the default bridge, as before deployments had their own network
    wait_for(lambda: deployment.ask() is not None, timeout=15)
    found, started = serving.ensure_proxy(docker_client, name, deployment.port, "127.0.0.1", plan,
                                          deployment.network, {}, local_probe)
    assert not started
    found.reload()
    assert deployment.network in found.attrs["NetworkSettings"]["Networks"]
    proxy.apply(found, plan)  # it now reaches the model container on the deployment's network
    assert deployment.ask().body == b"only"


def test_the_config_repeats_upstreams_by_reduced_weight_and_reads_back_as_its_plan():
    a = proxy.Backend(3, "serve-v3", "10.0.0.3:8000", "/health", 90)
    b = proxy.Backend(4, "serve-v4", "10.0.0.4:8000", "/ready", 10)
    plan = proxy.Plan((a, b), token="s3cret")
    servers = proxy.config(plan)["apps"]["http"]["servers"]
    assert set(servers) == {"front", "metrics", "v3", "v4"}
    dials = [u["dial"] for u in servers["front"]["routes"][-1]["handle"][0]["upstreams"]]
    assert dials == [proxy.version_socket(3)] * 9 + [proxy.version_socket(4)]
    assert servers["v4"]["listen"] == [proxy.version_socket(4)] and "metrics" in servers["v4"]
    assert "metrics" not in servers["metrics"]  # its own scrapes are not traffic
    assert proxy.plan_of(proxy.config(plan)) == plan
    odd = proxy.Plan((proxy.Backend(3, "a", "x:1", "/h", 33), proxy.Backend(4, "b", "y:1", "/h", 67)))
    front = proxy.config(odd)["apps"]["http"]["servers"]["front"]
    assert len(front["routes"]) == 1 and len(front["routes"][0]["handle"][0]["upstreams"]) == 100
    assert proxy.plan_of(proxy.config(odd)) == odd


def test_stable_is_the_larger_share_and_canary_the_other():
    a = proxy.Backend(3, "a", "x:1", "/h", 90)
    b = proxy.Backend(4, "b", "y:1", "/h", 10)
    assert proxy.Plan((b, a)).stable() == a and proxy.Plan((b, a)).canary() == b
    even = proxy.Plan((proxy.Backend(5, "c", "z:1", "/h", 50), proxy.Backend(4, "b", "y:1", "/h", 50)))
    assert even.stable().version == 4 and even.canary().version == 5
    alone = proxy.Plan((proxy.Backend(3, "a", "x:1", "/h", 100),))
    assert alone.stable().version == 3 and alone.canary() is None
    assert proxy.Plan(()).stable() is None


@pytest.mark.parametrize("weights", [(90, 20), (100, 0), (), (50, 50, 0)])
def test_a_plan_whose_weights_do_not_make_100_is_refused(weights):
    backends = tuple(proxy.Backend(i + 1, f"c{i}", f"x:{i}", "/h", w) for i, w in enumerate(weights))
    with pytest.raises(WorkbenchError, match="proxy plan"):
        proxy.config(proxy.Plan(backends))


def test_a_config_of_before_plans_reads_as_none():
    old = {"apps": {"http": {"servers": {"deployment": {"routes": [{"@id": "c", "handle": [{
        "handler": "reverse_proxy", "upstreams": [{"dial": "172.17.0.5:8000"}]}]}]}}}}}
    assert proxy.plan_of(old) is None and proxy.plan_of({}) is None
