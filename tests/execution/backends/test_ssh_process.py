"""The process executor on an SSH host, against real sshd on loopback: a host's shell is dash (this machine's
/bin/sh), or busybox alone (sh, setsid, date, sleep, mv... all busybox applets first on the session's PATH).
The host's Workbench dir is a local tmp dir (with a space and a quote in it), so the run's files and
processes are also looked at directly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import require, wait_for
from sshd_hosts import make_host
from workbench.errors import WorkbenchError
from workbench.execution.backends import ssh_process as rpe
from workbench.execution.backends.process import SUPERVISOR_KILLED
from workbench.execution.backends.ssh_process import RemoteProcessExecutor
from workbench.execution.base import BackendSettings, Launch, Machine
from workbench.execution.hosts import SshHost
from workbench.machines.hostkeys import HostKeyStore
from workbench.machines.ssh import Connection, SSHTarget, fetch_host_key

BUSYBOX_APPLETS = ("sh", "setsid", "mkdir", "mv", "cat", "date", "sleep", "tail", "rm", "kill", "printf",
                   "env", "umask")


@pytest.fixture(scope="module")
def busybox_sshd(ssh_env, tmp_path_factory):
    """An sshd whose sessions find busybox applets first on PATH: a host with nothing else."""
    busybox = shutil.which("busybox")
    require(busybox is not None, "busybox is not installed")
    root = tmp_path_factory.mktemp("bbhost")
    bindir = root / "bin"
    bindir.mkdir()
    for applet in BUSYBOX_APPLETS:
        (bindir / applet).symlink_to(busybox)
    host = make_host(root, "bb", "127.0.0.3", ssh_env.user_key.parent / "authorized_keys", str(bindir))
    host.start()
    yield host
    host.stop()


@pytest.fixture(params=["dash", "busybox"])
def shell(request):
    return request.param


@pytest.fixture
def executor(request, ssh_env, tmp_path):
    flavour = request.node.callspec.params.get("shell", "dash") if hasattr(request.node, "callspec") else "dash"
    sshd = request.getfixturevalue("busybox_sshd") if flavour == "busybox" else ssh_env.cpu
    hostkeys = HostKeyStore(tmp_path / "known_hosts", system=())
    target = SSHTarget(name="h1", hostname=sshd.address, port=sshd.port, user="root",
                       identity_files=[str(ssh_env.user_key)])
    hostkeys.trust(target.hostname, target.port, fetch_host_key(target, hostkeys))
    connection = Connection(target, hostkeys)
    root = tmp_path / "wb's host dir"
    root.mkdir()
    ex = RemoteProcessExecutor(Machine("h1", "ssh"), SshHost(connection, str(root)), BackendSettings())
    ex.started = []  # type: ignore[attr-defined]
    yield ex
    for handle in ex.started:  # type: ignore[attr-defined]
        for pid in _group(handle.pid):
            _kill(pid, signal.SIGKILL)
        if handle.shim and _start(handle.shim) == handle.shim_start:
            _kill(handle.shim, signal.SIGKILL)
    ex.host.close()
    connection.close()


def _stat(pid) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start(pid) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None


def _group(pgid) -> list[int]:
    """Live (not zombie) processes of a process group on this machine (the host is this machine)."""
    if not pgid:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            if fields and fields[2] == str(pgid) and fields[0] != "Z":
                found.append(int(entry))
    return found


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def submit(ex, tmp_path: Path, argv: list[str], env: dict[str, str] | None = None, run_id: str = "r1",
           gpu_ids: list[str] | None = None, snapshot: Path | None = None) -> dict:
    if snapshot is None:
        snapshot = tmp_path / "snap shot"
        snapshot.mkdir(exist_ok=True)
    launch = Launch(run_id=run_id, project="p", argv=argv, env=env or {}, snapshot_dir=str(snapshot),
                    run_dir=ex.host.run_dir(run_id), gpu_ids=gpu_ids or [])
    handle = ex.submit(launch)
    ex.started.append(handle)
    return handle


def finish(ex, handle, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while (state := ex.status(handle)).state == "running":
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.05)
    return state


def texts(data: bytes) -> list[tuple[str, str]]:
    """(stream, text) of log records `<stamp> <stream> <text>`."""
    out = []
    for line in data.decode().splitlines():
        stamp, stream, text = line.split(" ", 2)
        assert stamp.endswith("Z") and "T" in stamp
        out.append((stream, text))
    return out


# 20 lines to each stream and 20 metrics; after the 10th, it waits for a file `go` in its output dir
COUNT = ('i=1; while [ $i -le 20 ]; do echo "line $i"; echo "warn $i" >&2; '
         'echo "{\\"step\\": $i, \\"x\\": $i}" >> "$WORKBENCH_METRICS"; '
         'if [ $i = 10 ]; then while [ ! -e "$WORKBENCH_OUTPUT/go" ]; do sleep 0.05; done; fi; i=$((i + 1)); done; '
         'printf "last without newline"')


def test_logs_metrics_and_exit_zero(executor, tmp_path, shell):
    ex = executor
    handle = submit(ex, tmp_path, ["sh", "-c", COUNT])
    run_dir = Path(handle.run_dir)
    assert set(handle.to_record()) == {"run_dir", "machine", "shim", "shim_start", "pid", "proc_start", "started_at"}
    assert handle.machine == "h1" and handle.run_dir == ex.host.run_dir("r1")
    pid_file = json.loads((run_dir / "pid").read_text())
    assert pid_file["shim"] == handle.shim and pid_file["pid"] == handle.pid != handle.shim
    assert handle.proc_start == pid_file["proc_start"] and handle.proc_start.isdigit()

    # follow, stop after the first chunk, then follow on from its offset: every line exactly once
    first = next(iter(ex.read_logs(handle, "0", follow=True)))
    assert not first.eof and b"line 1\n" in first.data and b"line 11" not in first.data
    (run_dir / "out" / "go").touch()
    rest = list(ex.read_logs(handle, first.offset, follow=True))
    assert rest and rest[-1].eof and not any(c.eof for c in rest[:-1])
    records = texts(first.data + b"".join(c.data for c in rest))
    expected_out = [f"line {i}" for i in range(1, 21)] + ["last without newline"]
    assert [t for s, t in records if s == "out"] == expected_out
    assert [t for s, t in records if s == "err"] == [f"warn {i}" for i in range(1, 21)]

    state = ex.status(handle)
    assert (state.state, state.exit_code, state.reason) == ("exited", 0, None)
    assert json.loads((run_dir / "exit_code").read_text())["exit_code"] == 0
    out_size, err_size = (run_dir / "stdout.log").stat().st_size, (run_dir / "stderr.log").stat().st_size
    assert rest[-1].offset == f"{out_size},{err_size}"

    # from a mid offset (10 stdout lines, 5 stderr lines in): the rest, stdout's before stderr's, then eof
    mid = f"{sum(len(f'line {i}') + 1 for i in range(1, 11))},{sum(len(f'warn {i}') + 1 for i in range(1, 6))}"
    chunks = list(ex.read_logs(handle, mid, follow=False))
    assert len(chunks) == 1 and chunks[0].eof
    records = texts(chunks[0].data)
    assert records == [("out", t) for t in expected_out[10:]] + [("err", f"warn {i}") for i in range(6, 21)]
    assert list(ex.read_logs(handle, chunks[0].offset, follow=True)) == []

    metrics = ex.read_metrics(handle, "0", 1 << 20, True)
    assert [json.loads(l)["step"] for l in metrics.data.splitlines()] == list(range(1, 21))
    assert ex.read_metrics(handle, metrics.offset, 1 << 20, True).data == b""

    ex.cleanup(handle)
    assert not (run_dir / "stdout.log").exists() and not (run_dir / "stderr.log").exists()
    assert (run_dir / "out" / "metrics.jsonl").exists()


def test_progress_line_of_a_live_run(executor, tmp_path):
    import threading

    ex = executor
    handle = submit(ex, tmp_path, ["sh", "-c", 'printf "step 1\\r" >&2; sleep 1; printf "step 2\\r" >&2; sleep 1; echo >&2'])
    stop = threading.Event()
    seen = list(ex.progress(handle, stop))
    assert "step 1" in seen or "step 2" in seen
    assert seen[-1] == ""  # the line was completed before the run ended


def test_failing_command_records_its_exit_code(executor, tmp_path, shell):
    ex = executor
    handle = submit(executor, tmp_path, ["sh", "-c", "echo broken >&2; exit 3"])
    state = finish(ex, handle)
    assert (state.state, state.exit_code, state.reason) == ("exited", 3, None)
    assert state.finished_at and state.started_at
    assert b"err broken" in b"".join(c.data for c in ex.read_logs(handle, "0", follow=False))


def test_missing_program_and_missing_snapshot(executor, tmp_path):
    ex = executor
    state = finish(ex, submit(ex, tmp_path, ["no-such-program-wb"], run_id="r1"))
    assert state.exit_code == 127
    handle = submit(ex, tmp_path, ["true"], run_id="r2", snapshot=tmp_path / "gone")
    state = finish(ex, handle)
    assert state.exit_code == 127
    assert "cannot enter the snapshot dir" in (Path(handle.run_dir) / "stderr.log").read_text()


def test_killed_by_a_signal_is_named(executor, tmp_path, shell):
    ex = executor
    state = finish(ex, submit(ex, tmp_path, ["sh", "-c", "kill -USR1 $$; sleep 5"]))
    assert (state.state, state.exit_code) == ("exited", 128 + signal.SIGUSR1)
    assert state.reason == f"killed by signal {int(signal.SIGUSR1)} (SIGUSR1)"


def test_cancel_stops_the_whole_tree_within_the_grace(executor, tmp_path, shell):
    ex = executor
    # the experiment, a child of it and a grandchild: all in the experiment's own process group
    handle = submit(ex, tmp_path, ["sh", "-c", 'sh -c "sleep 300 & sleep 300" & sleep 300; wait'])
    wait_for(lambda: len(_group(handle.pid)) >= 4, timeout=10)
    assert handle.shim not in _group(handle.pid)  # the supervisor is outside the group it signals
    assert ex.status(handle).state == "running"
    started = time.monotonic()
    ex.cancel(handle)
    assert time.monotonic() - started < rpe.CANCEL_GRACE
    assert _group(handle.pid) == []
    state = ex.status(handle)
    assert (state.state, state.exit_code, state.reason) == ("exited", 143, "killed by signal 15 (SIGTERM)")


def test_cancel_kills_what_ignores_sigterm_after_the_grace(executor, tmp_path, monkeypatch, shell):
    ex = executor
    monkeypatch.setattr(rpe, "CANCEL_GRACE", 1)
    handle = submit(ex, tmp_path, ["sh", "-c", 'trap "" TERM; sleep 300 & sleep 300; wait'])
    wait_for(lambda: len(_group(handle.pid)) >= 3, timeout=10)
    started = time.monotonic()
    ex.cancel(handle)
    assert 1 <= time.monotonic() - started < 8
    assert _group(handle.pid) == []
    state = ex.status(handle)
    assert (state.exit_code, state.reason) == (137, "killed by signal 9 (SIGKILL)")


def test_killed_supervisor_leaves_the_run_running_then_unknown(executor, tmp_path, shell):
    ex = executor
    handle = submit(ex, tmp_path, ["sh", "-c", "sleep 2; echo done"])
    assert handle.proc_start == _start(handle.pid) and handle.shim_start == _start(handle.shim)
    os.kill(handle.shim, signal.SIGKILL)
    wait_for(lambda: _stat(handle.shim) is None or _stat(handle.shim)[0] == "Z", timeout=10)
    assert ex.status(handle).state == "running"
    assert list(ex.read_logs(handle, "0", follow=False)) == []
    chunks = list(ex.read_logs(handle, "0", follow=True))  # followed through the group to its end
    assert texts(b"".join(c.data for c in chunks)) == [("out", "done")] and chunks[-1].eof
    state = ex.status(handle)
    assert (state.state, state.exit_code, state.reason) == ("exited", None, SUPERVISOR_KILLED)
    assert not (Path(handle.run_dir) / "exit_code").exists()


def test_argv_env_and_gpus_reach_the_program_verbatim(executor, tmp_path, monkeypatch, shell):
    ex = executor
    monkeypatch.setenv("WB_WORKSTATION_ONLY", "leaked")
    tricky = ["a b", "it's", '"double"', "$(touch PWNED1)", "`touch PWNED2`", "two\nlines", "", "  lead ",
              "{output}/model.pt", "*", "back\\slash", "$HOME", "é ü", ";", "-c", "'"]
    env = {"WB_PARAM_X": "it's \"q\" $(touch PWNED3)\nnext line", "WB_PARAM_EMPTY": "", "IFS": "x",
           "PYTHONUNBUFFERED": "1"}
    script = ('for a; do printf "[%s]\\n" "$a"; done > "$WORKBENCH_OUTPUT/args"; '
              'printf "%s" "$WB_PARAM_X" > "$WORKBENCH_OUTPUT/x"; pwd > "$WORKBENCH_OUTPUT/cwd"; '
              'env > "$WORKBENCH_OUTPUT/env"')
    handle = submit(ex, tmp_path, ["sh", "-c", script, "argv0", *tricky], env=env, gpu_ids=["GPU-aa", "GPU-bb"])
    assert finish(ex, handle).exit_code == 0
    out = Path(handle.run_dir) / "out"
    expected = [a.replace("{output}", str(out)) for a in tricky]
    assert (out / "args").read_text() == "".join(f"[{a}]\n" for a in expected)
    assert (out / "x").read_text() == env["WB_PARAM_X"]
    assert (out / "cwd").read_text().strip() == str(tmp_path / "snap shot")
    run_env = (out / "env").read_text()
    assert "CUDA_VISIBLE_DEVICES=GPU-aa,GPU-bb\n" in run_env
    assert f"WORKBENCH_OUTPUT={out}\n" in run_env and f"WORKBENCH_METRICS={out / 'metrics.jsonl'}\n" in run_env
    assert "WB_WORKSTATION_ONLY" not in run_env  # the host's environment, not the workstation's
    assert "PATH=" in run_env
    assert not any(tmp_path.rglob("PWNED*")) and not list(Path("/").glob("PWNED*"))


@pytest.mark.parametrize("name", ["BAD-NAME", "1X", "", "A B", "X;touch Y", "É"])
def test_bad_env_name_is_one_line_and_starts_nothing(executor, tmp_path, name):
    ex = executor
    with pytest.raises(WorkbenchError) as failed:
        submit(ex, tmp_path, ["true"], env={"OK_NAME": "1", name: "v"})
    assert "\n" not in str(failed.value) and repr(name) in str(failed.value)
    assert not Path(ex.host.run_dir("r1")).exists()
    with pytest.raises(WorkbenchError) as failed:
        submit(ex, tmp_path, ["echo", "a\0b"])
    assert "NUL" in str(failed.value) and "\n" not in str(failed.value)


def test_adopt_finds_a_run_by_its_dir(executor, tmp_path):
    ex = executor
    handle = submit(ex, tmp_path, ["sleep", "30"])
    adopted = ex.adopt("r1", handle.run_dir)
    assert {k: getattr(adopted, k) for k in ("run_dir", "machine", "shim", "shim_start", "pid", "proc_start")} == \
        {k: getattr(handle, k) for k in ("run_dir", "machine", "shim", "shim_start", "pid", "proc_start")}
    assert ex.status(adopted).state == "running"
    ex.cancel(adopted)
    assert ex.status(handle).reason == "killed by signal 15 (SIGTERM)"
    assert ex.adopt("r9", ex.host.run_dir("r9")) is None
    with pytest.raises(WorkbenchError, match="already holds a run"):
        submit(ex, tmp_path, ["true"])
    assert ex.list({}) == []


def test_recycled_supervisor_pid_is_not_mistaken_for_the_run(executor, tmp_path):
    ex = executor
    handle = submit(ex, tmp_path, ["sh", "-c", "exit 0"])
    assert handle.proc_start and handle.shim_start  # even of a child that ended at once
    finish(ex, handle)
    (Path(handle.run_dir) / "exit_code").unlink()
    # the recorded pids now name other processes (or none): another start time is another process
    forged = replace(handle, shim=os.getpid(), pid=os.getpid())
    assert ex.status(forged).reason == SUPERVISOR_KILLED
    assert ex.status(replace(handle, run_dir=str(tmp_path / "nothing"))).state == "missing"


def test_a_program_named_with_parentheses_and_spaces(executor, tmp_path, shell):
    """/proc/PID/stat is split after the last ')': a command name may hold ') 1 2 ('."""
    ex = executor
    snapshot = tmp_path / "snap shot"
    snapshot.mkdir()
    (snapshot / "sl) 1 2 (x").symlink_to(shutil.which("sleep"))
    handle = submit(ex, tmp_path, ["./sl) 1 2 (x", "30"], snapshot=snapshot)
    assert _stat(handle.pid) is not None
    assert handle.proc_start == _start(handle.pid)
    os.kill(handle.shim, signal.SIGKILL)
    wait_for(lambda: _stat(handle.shim) is None or _stat(handle.shim)[0] == "Z", timeout=10)
    assert ex.status(handle).state == "running"  # found through its group, by its start time
    ex.cancel(handle)
    assert _group(handle.pid) == []
    assert ex.status(handle).reason == SUPERVISOR_KILLED


def test_a_graceful_exit_on_cancel_keeps_its_own_exit_code(executor, tmp_path, shell):
    """SIGTERM reaches the supervisor first (a trap interrupts its wait): the exit code is the child's."""
    ex = executor
    handle = submit(ex, tmp_path, ["sh", "-c", 'trap "echo bye; exit 0" TERM; sleep 300 & wait'])
    wait_for(lambda: len(_group(handle.pid)) >= 2, timeout=10)
    ex.cancel(handle)
    state = ex.status(handle)
    assert (state.state, state.exit_code, state.reason) == ("exited", 0, None)
    assert b"out bye" in b"".join(c.data for c in ex.read_logs(handle, "0", follow=False))
