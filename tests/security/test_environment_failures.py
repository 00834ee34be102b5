"""Issue 8, item 12: an engine that stops answering, a full disk, a read-only or damaged data dir: each
is one clear line with the fix, and nothing already recorded is lost."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import COUNTING_SPEC, assert_one_line_error, require

ENGINE = "/var/run/docker.sock"
SLOW = COUNTING_SPEC.replace("n = 30", "n = 40")


class EngineProxy:
    """A unix socket in front of the real engine that can be taken down and brought back: from the
    client's side, exactly an engine that was killed and restarted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server: socket.socket | None = None
        self.conns: list[socket.socket] = []

    def start(self) -> "EngineProxy":
        self.path.unlink(missing_ok=True)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(self.path))
        self.server.listen(64)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(ENGINE)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.path.unlink(missing_ok=True)
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass
        self.conns = []


@pytest.mark.usefixtures("docker_client")
def test_wait_keeps_following_through_an_engine_restart(make_project, home, tmp_path):
    proxy = EngineProxy(tmp_path / "engine.sock").start()
    root = make_project(SLOW)
    env = {**os.environ, "WORKBENCH_HOME": str(home), "DOCKER_HOST": f"unix://{proxy.path}"}
    waiting = subprocess.Popen([sys.executable, "-m", "workbench", "run", str(root), "--wait"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = waiting.stdout.readline()
        assert first.startswith("line "), first
        proxy.stop()
        time.sleep(1.5)
        proxy.start()
        out, err = waiting.communicate(timeout=120)
    finally:
        waiting.kill()
        proxy.stop()
    assert waiting.returncode == 0, err
    assert "the Docker engine stopped answering" in err and "answers again" in err
    assert "Traceback" not in err and "internal error" not in err
    done = subprocess.run([sys.executable, "-m", "workbench", "runs", "list", "--json"], env=env,
                          capture_output=True, text=True)
    run_id = __import__("json").loads(done.stdout)[0]["id"]
    logs = subprocess.run([sys.executable, "-m", "workbench", "runs", "logs", run_id], env=env,
                          capture_output=True, text=True).stdout.splitlines()
    assert logs == [f"line {i}" for i in range(1, 41)]


def test_a_frozen_engine_is_reported_in_seconds(cli, make_project, tmp_path):
    path = tmp_path / "frozen.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)  # accepts connections and never answers: a SIGSTOPped dockerd, from outside
    try:
        started = time.monotonic()
        result = cli("run", str(make_project(SLOW)), "--executor", "docker", env={"DOCKER_HOST": f"unix://{path}"})
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert_one_line_error(result, "does not answer", "within 5 s")
    assert elapsed < 20


def _root_namespaces() -> None:
    require(os.geteuid() == 0 and shutil.which("unshare") is not None, "needs root and unshare for mounts")


def _in_private_mounts(script: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "WB": f"{sys.executable} -m workbench"}
    env.pop("WORKBENCH_DEBUG", None)
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], env=env,
                          capture_output=True, text=True, timeout=240)


def test_disk_full_is_one_line_and_keeps_the_history(cli, make_project, home, tmp_path):
    _root_namespaces()
    root = make_project(SLOW + '[experiments.big]\nimage = "busybox:latest"\ncommand = ["true"]\n',
                        files={"weights.bin": "x" * (3 << 20)})
    small = tmp_path / "small"
    small.mkdir()
    script = f"""
set -e
mount -t tmpfs -o size=4m tmpfs {small}
cp -a {home}/. {small}/
export WORKBENCH_HOME={small}
$WB projects add {root} >/dev/null 2>&1
dd if=/dev/zero of={small}/filler bs=64k 2>/dev/null || true
set +e
$WB run {root} -e big --executor process; echo "exit=$?"
rm {small}/filler
$WB projects list
"""
    done = _in_private_mounts(script, home)
    lines = [l for l in done.stderr.splitlines() if l.startswith("workbench:")]
    assert "exit=1" in done.stdout, (done.stdout, done.stderr)
    assert len(lines) == 1 and "no space left on the device" in lines[0] and "workbench gc" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert str(root) in done.stdout  # what was recorded before is still there


def test_read_only_data_dir_is_one_line(cli, make_project, home):
    _root_namespaces()
    root = make_project(SLOW)
    assert cli("projects", "add", str(root)).code == 0
    done = _in_private_mounts(f"mount --bind -o ro {home} {home} && $WB run {root} --executor process", home)
    assert done.returncode == 1, done.stderr
    lines = [l for l in done.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "read-only" in lines[0] and "WORKBENCH_HOME" in lines[0], done.stderr


def test_a_damaged_database_is_one_line_with_the_fix(cli, home, make_project):
    from workbench.services import Workbench

    wb = Workbench()
    for i in range(300):
        wb._services.store.add_project(f"p{i}", f"/nowhere/{i}" * 20)
    wb.close()
    db = home / "workbench.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with open(db, "r+b") as fh:
        fh.seek(4096 * 2)
        fh.write(os.urandom(4096 * 3))
    result = cli("projects", "list")
    assert_one_line_error(result, "is damaged", ".recover")
