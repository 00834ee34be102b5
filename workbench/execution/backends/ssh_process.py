"""Runs as detached processes on an SSH host (no Docker): the process executor for a host that may have
nothing but a POSIX shell, setsid and busybox-level tools (no Python there).

Design (mirrors backends/process.py and proc_shim, in sh):
  * submit sends ONE script: it makes the run dir, writes `supervisor.sh` there and starts it with
    `setsid sh supervisor.sh` (its own session, stdin /dev/null, output to supervisor.err), then waits
    (bounded) for the supervisor's `pid` file and prints it.
  * The supervisor starts the experiment with `setsid` too, so the experiment leads its own session and
    process group (pgid = its pid) apart from the supervisor: cancel signals that whole group, children of
    children included, and the supervisor survives to record how it ended. The child writes stdout.log and
    stderr.log in the run dir itself (its output never passes through the supervisor).
  * `pid` (JSON: supervisor pid, child pid, their /proc start times, host start time) and `exit_code`
    (JSON: exit_code, signal, finished_at) are written atomically (tmp + mv).
  * status, cancel and adopt are each one remote command; a recycled pid is told apart by its start time;
    a supervisor killed while its experiment runs leaves the experiment running, and then SUPERVISOR_KILLED.

The run's environment is the host's, as sshd gives a command (PATH, HOME, ...), plus launch.env and
WORKBENCH_OUTPUT/WORKBENCH_METRICS: nothing of the workstation's own environment is passed. Its values never
sit in a script: submit writes them (over the channel's stdin) to a 0600 `launch.env` in the run dir, which the
experiment's shell opens and removes before the supervisor writes `pid`, and reads from the open descriptor.
Everything Workbench writes there is 0600 in 0700 dirs (SshHost.sh's umask); the experiment itself runs with
the login's own umask.

Limit: `wait` in sh reports a child killed by signal N as 128+N, the same as a child that exited with
128+N itself; such a status is recorded as the signal (local Python supervisor tells them apart).
"""

from __future__ import annotations

import json
import posixpath
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Iterator

from workbench.errors import WorkbenchError
from workbench.execution import runtime
from workbench.execution.backends.process import SUPERVISOR_KILLED
from workbench.execution.scripts import FINISH, q
from workbench.execution.base import BackendSettings, Chunk, Handle, Launch, Machine, RunState, exited, redrawn_tail
from workbench.execution.logfiles import LOG_FILES, read_log_files

if TYPE_CHECKING:
    from workbench.execution.hosts import SshHost

LOG_CHUNK = 1 << 20
FOLLOW_POLL = 0.2               # a followed run's logs (and its status) are looked at at most this often
PROGRESS_POLL = 0.5
PROGRESS_TAIL = 8192
CANCEL_GRACE = 10               # seconds between SIGTERM and SIGKILL
START_TIMEOUT = 10              # seconds submit waits for the supervisor's pid file
START_WAIT_NAPS = 60            # 0.05 s naps the supervisor waits for a slow child's start (within START_TIMEOUT)
ENV_FILE = "launch.env"  # the run's environment, 0600, from submit until its experiment's shell has read it
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Shell functions shared by the supervisor, status and cancel scripts: builtins only (read, set, test), no
# fork per process looked at. /proc/PID/stat is read whole (a command name may hold newlines) and split
# after its last ')' (a command name may hold spaces and parentheses).
_LIB = r"""
pstat() {
  S=; l=
  { while IFS= read -r l || [ -n "$l" ]; do S="$S$l "; l=; done; } 2>/dev/null < "/proc/$1/stat" || return 1
  case $S in *')'*) S=${S##*[)]} ;; *) return 1 ;; esac
}
pinfo() {
  pstat "$1" || return 1
  set -f; set -- $S; set +f
  [ $# -ge 20 ] || return 1
  STATE=$1; PGRP=$3; shift 19; START=$1
}
proc_is() {
  pinfo "$1" && [ "$STATE" != Z ] && [ "$START" = "$2" ]
}
group_alive() {
  if pinfo "$1"; then
    if [ -n "$2" ] && [ "$START" != "$2" ]; then return 1; fi
    [ "$STATE" != Z ] && return 0
  fi
  for f in /proc/[0-9]*; do
    pinfo "${f#/proc/}" || continue
    [ "$PGRP" = "$1" ] && [ "$STATE" != Z ] && return 0
  done
  return 1
}
nap() { sleep "$1" 2>/dev/null || sleep 1; }
"""


def _num(value: Any) -> str:
    """A pid or start time from a handle, as the digits a script may embed ('' when there is none)."""
    return str(int(value)) if value not in (None, "") else ""


def env_file(env: dict[str, str]) -> str:
    """The run's environment as sh `export` lines, for ENV_FILE (never for a script that stays on the host)."""
    return "".join(f"export {name}={q(value)}\n" for name, value in env.items())


def open_env(env_path: str) -> str:
    """An sh line that opens the env file on descriptor 3 and removes it: from then on no copy of the values
    is on disk, whatever becomes of the process. READ_ENV, later, sets them from the open descriptor."""
    return f"exec 3< {q(env_path)} && rm -f -- {q(env_path)} || exit 126"


# last before the command (the values may set any name, PATH and IFS included): Linux's /dev/fd reopens the
# removed file; the descriptor is closed before the command starts
READ_ENV = ". /dev/fd/3; exec 3<&-"


def _supervisor_script(run_dir: str, snapshot_dir: str, argv: list[str], runtime_dir: str | None = None) -> str:
    """The runtime goes on PYTHONPATH here, at exec time, after the run's environment: a fixed value in that
    environment would replace the PYTHONPATH the login gives the experiment."""
    command = " ".join(q(a) for a in argv)
    env_path = posixpath.join(run_dir, ENV_FILE)
    return f"""# Workbench run supervisor (written by RemoteProcessExecutor.submit)
{_LIB}
run={q(run_dir)}
case $1 in *[!0-7]*|"") login_umask=022 ;; *) login_umask=$1 ;; esac
child=
got=
{FINISH}
fwd() {{  # cancel = SIGTERM to this supervisor, forwarded to the experiment's process group
  got=1
  if [ -n "$child" ]; then kill -TERM -"$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null; fi
}}
trap fwd TERM INT HUP
umask 077
: >> "$run/stdout.log"; : >> "$run/stderr.log"
if ! cd {q(snapshot_dir)} 2>/dev/null; then
  rm -f "$run/{ENV_FILE}"
  printf 'workbench: cannot enter the snapshot dir %s\\n' {q(snapshot_dir)} >> "$run/stderr.log"
  finish 127
  exit 0
fi
# The child records its own start time (this shell may reap a child that ends at once before it is looked at),
# once it has taken its environment out of the env file: a run with a pid record has left no values on disk.
# The experiment runs with the login's own umask (its files sit in this 0700 run dir).
(
  pinfo self; me=$START
  {open_env(env_path)}
  printf '%s\\n' "$me" > "$run/child_start"
  umask "$login_umask"
  {READ_ENV}
  {runtime.on_path_line(runtime_dir)}  exec setsid {command}
) < /dev/null >> "$run/stdout.log" 2>> "$run/stderr.log" &
child=$!
# setsid makes the child its own process group: wait (bounded) until it has, so the group can be signalled
i=0
while pinfo "$child" && [ "$PGRP" != "$child" ] && [ "$STATE" != Z ] && [ $i -lt 20000 ]; do i=$((i + 1)); done
proc_start=
i=0
while [ -z "$proc_start" ] && [ $i -lt 20000 ]; do
  if read -r x 2>/dev/null < "$run/child_start"; then proc_start=$x; fi
  i=$((i + 1))
done
# a loaded host: the pid record must not come before the child has taken (and removed) the env file (submit
# then removes what the child has not read); bounded in time, and not at all once the file is gone (a full
# disk may keep child_start from being written)
i=0
while [ -z "$proc_start" ] && [ -e "$run/{ENV_FILE}" ] && pinfo "$child" && [ "$STATE" != Z ] \
    && [ $i -lt {START_WAIT_NAPS} ]; do
  nap 0.05
  if read -r x 2>/dev/null < "$run/child_start"; then proc_start=$x; fi
  i=$((i + 1))
done
pinfo $$; shim_start=$START
printf '{{"shim": %s, "shim_start": "%s", "pid": %s, "proc_start": "%s", "started_at": %s}}\\n' \\
  $$ "$shim_start" "$child" "$proc_start" "$(date +%s)" > "$run/pid.tmp" && mv -f "$run/pid.tmp" "$run/pid"
if [ -n "$got" ]; then fwd; fi
got=
wait "$child"
code=$?
# A trapped signal interrupts wait (status > 128) whether or not the child has ended: ask again. dash and
# busybox sh report a child's status again; a shell that has forgotten the child says 127 (the status
# first seen was the child's). Only a child exiting 127 just as a signal came is misread (as 128+N).
while [ -n "$got" ] && [ "$code" -gt 128 ]; do
  got=
  wait "$child"
  again=$?
  if [ "$again" = 127 ]; then break; fi
  code=$again
done
rm -f "$run/{ENV_FILE}"  # an experiment that ended before it took its environment leaves none behind
finish "$code"
"""


class RemoteProcessExecutor:
    """The process executor on an SSH host (see the module docstring). GPU pinning: CUDA_VISIBLE_DEVICES is
    set to the launch's GPU UUIDs, comma-joined (the NVIDIA driver accepts UUIDs there); nothing else
    confines the process to them."""
    name = "process"

    def __init__(self, machine: Machine, host: "SshHost", settings: BackendSettings) -> None:
        self.machine, self.host = machine, host

    # starting -----------------------------------------------------------------------------------------
    def submit(self, launch: Launch) -> Handle:
        run_dir = str(launch.run_dir)
        out = posixpath.join(run_dir, "out")
        env = {**launch.env, "WORKBENCH_OUTPUT": out, "WORKBENCH_METRICS": posixpath.join(out, "metrics.jsonl")}
        if launch.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(launch.gpu_ids)
        argv = [a.replace("{output}", out) for a in launch.argv]
        _check(argv, env)
        supervisor = _supervisor_script(run_dir, str(launch.snapshot_dir), argv, launch.runtime_dir)
        # the values go over this channel's stdin into a 0600 file the experiment's shell removes as it reads
        # it (before the supervisor writes its pid record); supervisor.sh holds none of them
        script = f"""{_LIB}
run={q(run_dir)}
command -v setsid >/dev/null 2>&1 || {{ echo "setsid is not installed (util-linux or busybox)" >&2; exit 1; }}
if [ -e "$run/pid" ] || [ -e "$run/exit_code" ]; then echo "$run already holds a run" >&2; exit 1; fi
mkdir -p "$run/out" || exit 1
printf '%s' {q(supervisor)} > "$run/supervisor.sh" || exit 1
printf '%s' {q(env_file(env))} > "$run/{ENV_FILE}" || exit 1
setsid sh "$run/supervisor.sh" "$wb_umask" < /dev/null >> "$run/supervisor.err" 2>&1 &
i=0
while [ ! -f "$run/pid" ] && [ ! -f "$run/exit_code" ] && [ $i -lt {START_TIMEOUT * 20} ]; do
  sleep 0.05 2>/dev/null || {{ sleep 1; i=$((i + 19)); }}
  i=$((i + 1))
done
if [ -f "$run/pid" ]; then printf 'pid '; cat "$run/pid"; fi
if [ -f "$run/exit_code" ]; then printf 'exit '; cat "$run/exit_code"; fi
if [ ! -f "$run/pid" ] && [ ! -f "$run/exit_code" ]; then printf 'none '; tail -n 1 "$run/supervisor.err" 2>/dev/null; fi
# a supervisor that never started its experiment must not leave the values behind (one that did: its
# experiment's shell removes them as it reads them, and the supervisor when the experiment ends)
if [ ! -f "$run/pid" ] && [ ! -f "$run/exit_code" ]; then rm -f "$run/{ENV_FILE}"; fi
exit 0
"""
        found = _records(self.host.sh(script, timeout=START_TIMEOUT + 30, what="starting the run",
                                      login_umask=True))
        if "none" in found or not found:
            detail = found.get("none", "").strip()
            raise WorkbenchError(f"{self.host.name}: the run supervisor did not start within {START_TIMEOUT}s"
                                 + (f": {detail[:200]}" if detail else "")
                                 + f" (see {posixpath.join(run_dir, 'supervisor.err')})")
        pid = _json(found.get("pid"))
        return Handle(run_dir, self.host.name, shim=pid.get("shim"), shim_start=pid.get("shim_start"),
                      pid=pid.get("pid"), proc_start=pid.get("proc_start"), started_at=time.time())

    # watching -----------------------------------------------------------------------------------------
    def status(self, handle: Handle) -> RunState:
        """One remote command: the exit record if there is one, else whether the supervisor (same start time)
        or, once it is gone, anything in the experiment's process group still runs."""
        shim, shim_start = _num(handle.shim), _num(handle.shim_start)
        group, leader_start = _num(handle.pid), _num(handle.proc_start)
        script = f"""{_LIB}
run={q(handle.run_dir)}
record() {{
  if [ -f "$run/exit_code" ]; then
    x=; IFS= read -r x < "$run/exit_code"; printf 'exit %s\\n' "$x"; exit 0
  fi
}}
record
if [ -n "{shim}" ] && proc_is "{shim}" "{shim_start}"; then echo running; exit 0; fi
record
if [ -z "{group}" ] || [ ! -f "$run/pid" ]; then echo missing; exit 0; fi
if group_alive "{group}" "{leader_start}"; then echo running; exit 0; fi
record
echo gone
"""
        found = _records(self.host.sh(script, timeout=60, what="reading the run's state"))
        started = handle.started_at
        if "exit" in found:
            return self.with_full_disk(exited(_json(found["exit"]), started), handle.run_dir)
        if "running" in found:
            return RunState("running", started_at=started)
        if "missing" in found:
            return RunState("missing", reason="its supervisor is gone and left no record of the run")
        # the supervisor died before the experiment: it ended, but nobody was there to see how (or a full
        # disk kept it from writing the record)
        return self.with_full_disk(RunState("exited", exit_code=None, reason=SUPERVISOR_KILLED, started_at=started),
                                   handle.run_dir)

    def with_full_disk(self, state: RunState, run_dir: str) -> RunState:
        """A run that failed, or ended without its record, on a full disk (its dir has no room left, or its
        stderr says "No space left on device"): that is its reason, with the host and dir, not just its exit
        code. Asked once the run has ended."""
        if state.state == "exited" and state.exit_code != 0 and state.reason in (None, SUPERVISOR_KILLED):
            full = self.host.full_disk_reason(run_dir)
            if full is not None:
                state.reason = full if state.reason is None else f"{full}; its end could not be recorded"
        return state

    def read_logs(self, handle: Handle, offset: str, follow: bool) -> Iterator[Chunk]:
        """The run's stdout.log and stderr.log (logfiles.read_log_files, the same offsets as the local process
        executor's) over SFTP; a live run is followed at most every FOLLOW_POLL, one status command per round."""
        run_dir = handle.run_dir
        return read_log_files(lambda name, start, limit: self.host.read_range(posixpath.join(run_dir, name), start,
                                                                              limit),
                              lambda: self.status(handle).state == "running", offset, follow, FOLLOW_POLL, LOG_CHUNK)

    def progress(self, handle: Handle, stop: threading.Event) -> Iterator[str]:
        """The unfinished last line of whichever stream wrote last, looked at every PROGRESS_POLL (yielded
        when it changes)."""
        run_dir = handle.run_dir
        last: str | None = None
        while not stop.is_set():
            finished = self.status(handle).state != "running"  # looked at first: the last look sees the end
            tails = []
            for order, (_, name) in enumerate(LOG_FILES):
                found = self.host.tail(posixpath.join(run_dir, name), PROGRESS_TAIL)
                if found is not None:
                    text = redrawn_tail(found[1])
                    tails.append((found[0], bool(text), order, text))  # SFTP mtimes are whole seconds
            line = max(tails)[3] if tails else ""
            if line != last:
                last = line
                yield line
            if finished:
                return
            stop.wait(PROGRESS_POLL)

    def read_metrics(self, handle: Handle, offset: str, limit: int, final: bool) -> Chunk:
        return self.host.read_from(posixpath.join(handle.run_dir, "out", "metrics.jsonl"), offset, limit, final)

    # ending -------------------------------------------------------------------------------------------
    def cancel(self, handle: Handle) -> None:
        """One remote command: SIGTERM to the supervisor, which forwards it to the experiment's process
        group, or to the group itself when the supervisor is gone; SIGKILL to whatever of the group is left
        after CANCEL_GRACE; then a moment for the supervisor to record the exit."""
        shim, shim_start = _num(handle.shim), _num(handle.shim_start)
        group, leader_start = _num(handle.pid), _num(handle.proc_start)
        script = f"""{_LIB}
sa() {{ [ -n "{shim}" ] && proc_is "{shim}" "{shim_start}"; }}
ga() {{ [ -n "{group}" ] && group_alive "{group}" "{leader_start}"; }}
if sa; then kill -TERM "{shim}" 2>/dev/null
elif ga; then kill -TERM -"{group}" 2>/dev/null
fi
end=$(($(date +%s) + {int(CANCEL_GRACE)}))
while ga && [ "$(date +%s)" -le "$end" ]; do nap 0.05; done
if ga; then kill -KILL -"{group}" 2>/dev/null; fi
i=0
while sa && [ $i -lt 40 ]; do nap 0.05; i=$((i + 1)); done
exit 0
"""
        self.host.sh(script, timeout=CANCEL_GRACE + 30, what="cancelling the run")

    def adopt(self, run_id: str, run_dir: str) -> Handle | None:
        """The handle of a run whose launcher died before recording it, from its run dir; None if it never
        started."""
        run_dir = str(run_dir)
        pid = self.host.read_small(posixpath.join(run_dir, "pid"))
        if pid is None and self.host.read_small(posixpath.join(run_dir, "exit_code")) is None:
            return None
        info = _json(pid.decode(errors="replace") if pid is not None else None)
        return Handle(run_dir, self.host.name, shim=info.get("shim"), shim_start=info.get("shim_start"),
                      pid=info.get("pid"), proc_start=info.get("proc_start"), started_at=info.get("started_at"))

    def list(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return []  # process runs are found through their run dirs, which the database names

    def cleanup(self, handle: Handle) -> None:
        self.host.remove_files(posixpath.join(handle.run_dir, name) for _, name in LOG_FILES)

def _check(argv: list[str], env: dict[str, str]) -> None:
    """One line for what cannot reach a program through sh: a bad name, a NUL, text that is not UTF-8."""
    if not argv:
        raise WorkbenchError("the run has no command to start")
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise WorkbenchError(f"environment variable {name!r} cannot be passed through a shell "
                                 "(names are letters, digits and _, not starting with a digit)")
        _text(value, f"environment variable {name}")
    for arg in argv:
        _text(arg, "a command argument")


def _text(value: str, what: str) -> None:
    if "\0" in value:
        raise WorkbenchError(f"{what} holds a NUL byte, which a process cannot be given")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise WorkbenchError(f"{what} is not valid UTF-8 text") from None


def _records(output: bytes) -> dict[str, str]:
    """`word rest` lines of a script's output, by word."""
    found: dict[str, str] = {}
    for line in output.decode(errors="replace").splitlines():
        word, _, rest = line.partition(" ")
        if word:
            found.setdefault(word, rest)
    return found


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
