"""A real "remote GPU host" on this one machine, for the remote-execution tests (fixture: tests/conftest.py).

* A second Docker engine with its own bridge, NAT/FORWARD rules, data root, exec root, pid file and unix
  socket, started with a stand-in `nvidia-container-runtime-hook` first on its PATH, so GPU requests
  (`device_requests`) start containers that see `NVIDIA_VISIBLE_DEVICES` = the requested ids.
* Real sshd hosts whose sessions point `DOCKER_HOST` at that engine and put the fake `nvidia-smi` (replaying
  the H100 captures) first on PATH: one on loopback, one behind a jump host in network namespaces (unix
  sockets still work there: network namespaces do not isolate the file system), and one without Docker
  (its DOCKER_HOST names a socket no engine listens on).

Everything lives under one short temp dir /tmp/wb-d2-XXXX (unix socket paths max 108 chars). One session at
a time holds LOCK; what it creates is recorded in STATE, so a session that finds the lock free and a STATE
left behind cleans up after a crashed predecessor first: processes are stopped by pid (only those whose
command line names that predecessor's own temp dir), never by name.

The second dockerd (a second engine that only the SSH host reaches) is always started with `-b BRIDGE` (never without it in this namespace: that would destroy the main engine's
docker0) and `--iptables=false` (we add our own rules). Its user-defined networks (a deployment's own) take
/24s of NETWORK_POOL (its daemon.json's default-address-pools), and one more rule lets their containers
reach each other (this namespace's FORWARD policy is DROP and bridged traffic passes iptables). With
--iptables=false Docker does not isolate networks from each other, as an engine with its own rules does:
a deployment's isolation is tested on the main engine (tests/serving/test_proxy.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from helpers import GPU_FIXTURES, wait_for
from sshd_hosts import SSHD, Host, keygen, make_fakegpu, make_host, wire_jump_and_target

# Neither the main engine's default pools (172.17-31.0.0/16, 192.168.0-240.0/20) nor test_proxyjump's
# 10.251.77-78.0/30 can overlap these.
BRIDGE, BRIDGE_ADDRESS, BRIDGE_SUBNET = "wbrb0", "10.231.0.1/24", "10.231.0.0/24"
HOST_SIDE, JUMP_SIDE = "10.251.87.1", "10.251.87.2"      # this machine <-> jump namespace
JUMP_INNER, TARGET = "10.251.88.1", "10.251.88.2"        # jump namespace <-> target namespace
TARGET_SUBNET = "10.251.88.0/30"
NETWORK_POOL = "10.232.0.0/16"  # the second engine's user-defined networks: /24s of it (unused here, see above)
SSH_PORT_IN_NAMESPACE = 2222                               # fresh namespaces: every port is free there
LOCK = Path("/tmp/wb-remote-env.lock")
STATE = Path("/tmp/wb-remote-env.json")
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
RULES = (  # (table, chain, rule): inserted at setup, deleted (every copy) at teardown
    ("nat", "POSTROUTING", ["-s", BRIDGE_SUBNET, "!", "-o", BRIDGE, "-j", "MASQUERADE"]),
    ("filter", "FORWARD", ["-i", BRIDGE, "-j", "ACCEPT"]),
    ("filter", "FORWARD", ["-o", BRIDGE, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"]),
    ("filter", "FORWARD", ["-s", NETWORK_POOL, "-d", NETWORK_POOL, "-j", "ACCEPT"]),
)
HOOK = "#!/bin/sh\n# stand-in for the NVIDIA hook: docker registers its nvidia driver when this is on PATH\ncat >/dev/null\nexit 0\n"


def gpu_uuids() -> list[str]:
    """The UUIDs the fake nvidia-smi reports (from the H100 capture of `nvidia-smi -L`)."""
    return re.findall(r"UUID: (GPU-[0-9a-f-]+)", (GPU_FIXTURES / "nvidia-smi-L.txt").read_text())


def run(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


# --- the state of one session, for a successor to clean up after a crash ------------------------------------

@dataclass
class State:
    root: str = ""
    netns: list[str] = field(default_factory=list)
    veth: list[str] = field(default_factory=list)
    route: str = ""
    bridge: bool = False
    rules: bool = False

    def save(self) -> None:
        STATE.write_text(json.dumps(self.__dict__))


def acquire_lock(timeout: float = 240):
    """Serializes sessions on this machine (another engineer's pytest may run this fixture too)."""
    handle = open(LOCK, "a")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise RuntimeError(f"another test session holds {LOCK} (its remote host env) for {timeout}s")
            time.sleep(0.5)


def release_lock(handle) -> None:
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def processes_naming(path: str) -> list[int]:
    """Pids of the processes whose command line names `path` (our own dockerd, containerd, shims, sshd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if path in cmdline:
            found.append(int(entry.name))
    return found


def stop_pid(pid: int, timeout: float = 30) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
                return  # a zombie: exited, its parent (maybe us) reaps it
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def unmount_under(root: str) -> None:
    """Unmounts whatever dockerd/containerd left mounted under root (deepest first)."""
    prefix = root.rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        run("umount", "-l", point, check=False)


def delete_rules() -> None:
    for table, chain, rule in RULES:
        while run("iptables", "-t", table, "-C", chain, *rule, check=False).returncode == 0:
            run("iptables", "-t", table, "-D", chain, *rule)


def clean_up(state: State) -> None:
    """Undoes everything `state` records; idempotent, safe on a half-built or long-dead session."""
    if state.root:
        dockerd_pid = Path(state.root, "dockerd.pid")
        if dockerd_pid.exists():  # the engine first: it stops its own containers and its containerd
            try:
                pid = int(dockerd_pid.read_text().strip())
                if state.root in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    stop_pid(pid)
            except (ValueError, OSError):
                pass
        for pid in processes_naming(state.root):
            stop_pid(pid, timeout=10)
        unmount_under(state.root)
        shutil.rmtree(state.root, ignore_errors=True)
    for ns in state.netns:
        run("ip", "netns", "del", ns, check=False)
    for dev in state.veth:
        run("ip", "link", "del", dev, check=False)
    if state.route:
        run("ip", "route", "del", "unreachable", state.route, check=False)
    # the bridge and rules have fixed names: remove them even when no STATE says we made them
    delete_rules()
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run("ip", "link", "set", BRIDGE, "down", check=False)
        run("ip", "link", "del", BRIDGE, check=False)


def clean_up_after_crashed_session() -> None:
    """Under the lock: whatever a previous session left (STATE file, bridge, rules) is stale."""
    state = State()
    if STATE.exists():
        try:
            state = State(**json.loads(STATE.read_text()))
        except (ValueError, TypeError):
            pass
    clean_up(state)
    STATE.unlink(missing_ok=True)


# --- the second engine ---------------------------------------------------------------------------------------

def make_bridge(state: State) -> None:
    run("ip", "link", "add", BRIDGE, "type", "bridge")
    state.bridge = True
    state.save()
    run("ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    state.rules = True
    state.save()
    table, chain, rule = RULES[0]
    run("iptables", "-t", table, "-A", chain, *rule)          # its own NAT ...
    for table, chain, rule in RULES[1:]:                       # ... and forwarding (the main engine's FORWARD
        run("iptables", "-t", table, "-I", chain, *rule)       # policy is DROP)


def start_engine(root: Path, log) -> subprocess.Popen:
    hook_dir = root / "hook"
    hook_dir.mkdir()
    hook = hook_dir / "nvidia-container-runtime-hook"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    config = root / "daemon.json"
    # none of /etc/docker/daemon.json's settings (hosts, bridge ...) apply here
    config.write_text(json.dumps({"default-address-pools": [{"base": NETWORK_POOL, "size": 24}]}) + "\n")
    env = {**os.environ, "PATH": f"{hook_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
    env.pop("DOCKER_HOST", None)
    return subprocess.Popen(
        [DOCKERD, "--config-file", str(config), "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{root / 'docker.sock'}",
         "-b", BRIDGE, "--iptables=false"],
        stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True)


def wait_for_engine(process: subprocess.Popen, socket_path: Path, log_path: Path, timeout: float = 60):
    import docker

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the second dockerd exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            client = docker.DockerClient(base_url=f"unix://{socket_path}", timeout=60)  # asks the API version
            client.ping()
            return client
        except Exception:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise RuntimeError(f"the second dockerd did not answer in {timeout}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)


def copy_image(image: str, docker_host: str) -> None:
    """`docker save IMAGE | DOCKER_HOST=... docker load` from the main engine."""
    main_env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, env=main_env)
    load = subprocess.run(["docker", "load"], stdin=save.stdout, capture_output=True, text=True,
                          env={**main_env, "DOCKER_HOST": docker_host})
    save.stdout.close()
    if save.wait() != 0 or load.returncode != 0:
        raise RuntimeError(f"copying {image} to the second engine failed: {load.stderr.strip()}")


# --- the sshd hosts ------------------------------------------------------------------------------------------

def make_docker_host(root: Path, name: str, address: str, authorized: Path, path_prefix: str | None,
                     docker_host: str, port: int | None = None) -> Host:
    """make_host, whose sessions also get DOCKER_HOST (on the one SetEnv line sshd reads)."""
    host = make_host(root, name, address, authorized, path_prefix, port=port)
    text = host.config.read_text()
    assert text.count("SetEnv ") == 1, text
    # the GPU's compute processes are whatever a test writes into gpu-apps.csv (none while it is absent)
    # and it has as many GPUs as gpu-count says (the capture's one while it is absent)
    host.config.write_text(text.replace("SetEnv ", f"SetEnv DOCKER_HOST={docker_host} "
                                                   f"WB_GPU_APPS_FILE={host.dir / 'gpu-apps.csv'} "
                                                   f"WB_GPU_COUNT_FILE={host.dir / 'gpu-count'} ", 1))
    return host


def ip(*args: str) -> None:
    run("ip", *args)


def make_namespaces(state: State) -> tuple[str, str]:
    """A jump namespace this machine reaches over a veth, and a target namespace only the jump namespace
    reaches (the same shape as tests/machines/test_proxyjump.py, on other subnets). Returns their names."""
    tag = uuid.uuid4().hex[:6]
    jump_ns, target_ns = f"wbrjump{tag}", f"wbrtarget{tag}"
    a_host, a_jump, b_jump, b_target = f"wra{tag}", f"wrb{tag}", f"wrc{tag}", f"wrd{tag}"
    for ns in (jump_ns, target_ns):
        ip("netns", "add", ns)
        state.netns.append(ns)
        state.save()
    # This machine must never send the target's traffic anywhere: no route out for its subnet.
    ip("route", "add", "unreachable", TARGET_SUBNET)
    state.route = TARGET_SUBNET

    def made(dev: str) -> None:
        state.veth.append(dev)
        state.save()
    wire_jump_and_target(ip, jump_ns, target_ns, (a_host, a_jump, b_jump, b_target),
                         (HOST_SIDE, JUMP_SIDE, JUMP_INNER, TARGET), made)
    return jump_ns, target_ns


def start_in_namespace(host: Host, ns: str) -> None:
    """Starts host's sshd inside network namespace ns; up once it has written its pid file (after listening;
    no port probe from here reaches a target namespace)."""
    pid_file = host.dir / "sshd.pid"
    pid_file.unlink(missing_ok=True)
    host.process = subprocess.Popen(["ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f", str(host.config)],
                                    stdout=subprocess.DEVNULL, stderr=open(host.dir / "sshd.log", "ab"))

    def up() -> bool:
        if host.process.poll() is not None:
            raise RuntimeError(f"sshd in {ns} exited: {(host.dir / 'sshd.log').read_text()[-2000:]}")
        return pid_file.exists() and pid_file.read_text().strip() != ""
    wait_for(up, timeout=20)


# --- for the tests -------------------------------------------------------------------------------------------

@dataclass
class RemoteEnv:
    user_key: Path            # the identity every host accepts (ed25519, no passphrase)
    gpu: Host                 # loopback sshd: DOCKER_HOST = the second engine, fake H100 nvidia-smi on PATH
    nodocker: Host            # loopback sshd: fake nvidia-smi, DOCKER_HOST = a socket no engine listens on
    jump: Host                # a plain sshd in a jump namespace (reachable from here)
    target: Host              # like gpu, but in a namespace only `jump` reaches
    docker_host: str          # "unix:///tmp/wb-d2-XXXX/docker.sock": the second engine
    docker: object            # docker.DockerClient for the second engine
    gpu_uuids: list[str]      # what the fake nvidia-smi reports: ["GPU-cccebab5-..."]
    root: Path                # the temp dir holding all of it
    missing_docker_host: str  # the nodocker host's DOCKER_HOST

    @property
    def hosts(self) -> list[Host]:
        return [self.gpu, self.nodocker, self.jump, self.target]

    def known_hosts(self) -> Path:
        """A known_hosts file with every host's key (for a plain `ssh -o StrictHostKeyChecking=yes`)."""
        path = self.root / "known_hosts"
        path.write_text("".join(h.known_hosts_line("ed25519") for h in self.hosts))
        return path

    def ssh_command(self, host: Host, command: str, jump: Host | None = None) -> list[str]:
        """argv of a plain OpenSSH client running `command` on host (through jump when given), strict host
        key checking against known_hosts(); pass it to subprocess.run."""
        config = self.root / "ssh_config"
        options = (f"  IdentityFile {self.user_key}\n  IdentitiesOnly yes\n  BatchMode yes\n"
                   f"  StrictHostKeyChecking yes\n  UserKnownHostsFile {self.known_hosts()}\n"
                   "  ConnectTimeout 5\n  LogLevel ERROR\n")
        config.write_text(f"Host *\n  User root\n{options}")  # -F reaches the jump's ssh too; -i/-o do not
        argv = ["ssh", "-F", str(config), "-p", str(host.port)]
        if jump is not None:
            argv += ["-J", f"root@{jump.address}:{jump.port}"]
        return [*argv, host.address, command]

    def ssh(self, host: Host, command: str, jump: Host | None = None, timeout: float = 60):
        return subprocess.run(self.ssh_command(host, command, jump), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)


def cluster_up() -> bool:
    """Whether the Slurm test cluster (.ci/slurm.sh; its login node is the SSH test host) answers sinfo."""
    if not shutil.which("sinfo"):
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return done.returncode == 0 and any(s in done.stdout for s in ("idle", "mix", "alloc"))


def register(cli, name: str, host: Host, key: Path, jump: Host | None = None, jump_name: str | None = None,
             extra: tuple[str, ...] = ()) -> dict:
    """`workbench machines add NAME --ssh root@ADDR:PORT --identity KEY [--jump ...]` then `machines trust NAME
    --fingerprint FP`, asserting both succeed (the pattern of tests/machines/test_ssh_machines.py). With a
    jump host, that host is registered and trusted first as JUMP_NAME (default NAME-jump): the hop's own key
    must be trusted. `extra`: more `machines add` arguments (e.g. ("--hourly-cost", "2.5")). Returns the add
    command's JSON."""
    if jump is not None:
        register(cli, jump_name or f"{name}-jump", jump, key)
    args = ["machines", "add", name, "--ssh", host.ssh, "--identity", str(key), *extra, "--json"]
    if jump is not None:
        args[-1:-1] = ["--jump", jump.ssh]
    added = cli(*args)
    assert added.code == 0, added.err
    assert added.json()["fingerprint"] == host.fingerprint, added.out
    trusted = cli("machines", "trust", name, "--fingerprint", host.fingerprint)
    assert trusted.code == 0, trusted.err
    return added.json()


def build(state: State) -> RemoteEnv:
    """Builds everything (state records each piece as it is made, for clean_up)."""
    root = Path(tempfile.mkdtemp(prefix="wb-d2-", dir="/tmp"))
    state.root = str(root)
    state.save()
    make_bridge(state)
    log_path = root / "dockerd.log"
    with open(log_path, "ab") as log:
        process = start_engine(root, log)
    socket_path = root / "docker.sock"
    docker_host = f"unix://{socket_path}"
    client = wait_for_engine(process, socket_path, log_path)
    client._workbench_process = process  # type: ignore[attr-defined]  # stopped by pid at teardown
    copy_image("busybox:latest", docker_host)

    user_key = root / "userkey"
    keygen(user_key)
    authorized = root / "authorized_keys"
    authorized.write_text((root / "userkey.pub").read_text())
    fakegpu = str(make_fakegpu(root))
    missing = f"unix://{root / 'no-engine.sock'}"
    gpu = make_docker_host(root, "gpu", "127.0.0.3", authorized, fakegpu, docker_host)
    nodocker = make_docker_host(root, "nodocker", "127.0.0.4", authorized, fakegpu, missing)
    gpu.start()
    nodocker.start()
    jump_ns, target_ns = make_namespaces(state)
    jump = make_host(root, "jump", JUMP_SIDE, authorized, None, port=SSH_PORT_IN_NAMESPACE)
    target = make_docker_host(root, "target", TARGET, authorized, fakegpu, docker_host, port=SSH_PORT_IN_NAMESPACE)
    start_in_namespace(jump, jump_ns)
    start_in_namespace(target, target_ns)
    return RemoteEnv(user_key, gpu, nodocker, jump, target, docker_host, client, gpu_uuids(), root, missing)


def tear_down(env: RemoteEnv | None, state: State) -> None:
    if env is not None:
        client = env.docker
        try:
            for container in client.containers.list(all=True):
                container.remove(force=True)
        except Exception:  # noqa: BLE001  # the engine may be gone already; stopping it below is what matters
            pass
        process = getattr(client, "_workbench_process", None)
        client.close()
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for host in env.hosts:
            host.stop()
    clean_up(state)
    STATE.unlink(missing_ok=True)


# --- a host gone silent -------------------------------------------------------------------------------------

def _rule(action: str, host) -> None:
    subprocess.run(["iptables", action, "INPUT", "-d", host.address, "-p", "tcp", "--dport", str(host.port),
                    "-j", "DROP"], check=True, capture_output=True)


@contextlib.contextmanager
def silent(host):
    """The host's sshd stops answering (packets to it vanish); always healed, even when the test fails."""
    _rule("-I", host)
    try:
        yield
    finally:
        while subprocess.run(["iptables", "-D", "INPUT", "-d", host.address, "-p", "tcp", "--dport",
                              str(host.port), "-j", "DROP"], capture_output=True).returncode == 0:
            pass  # every copy
