"""Runs on a Slurm cluster, through its login node (an SSH host whose Workbench dir is on the cluster's shared
file system): nothing above execution/ knows Slurm is there.

* submit writes a batch script into the run dir and calls `sbatch --parsable` (job name `wb-<run id>`,
  comment `workbench:<instance>:<run id>`, `--gres=gpu:N`, partition, account, time limit); the job runs the
  experiment as a process in the snapshot with the Workbench environment (an optional `setup` line first, e.g.
  `module load cuda`), writing stdout.log, stderr.log, out/metrics.jsonl and an `exit_code` record into its
  run dir — the layout of the process executor on an SSH host, so logs, metrics and progress are read by the
  same code (RemoteProcessExecutor), over SFTP from byte offsets. The run's environment is not in the script:
  it goes in sbatch's own environment (see _sbatch), which Slurm keeps with the job for every attempt; what
  the job writes is 0600 in 0700 dirs (the experiment keeps the login's umask).
* status reads the run's exit record (SFTP: no Slurm call) and otherwise what the cluster's last `squeue`
  said: one batched call per poll interval per cluster, shared by every Workbench process through the
  database (SlurmQueue), so the scheduler sees the poll rate, never the number of runs. PENDING keeps the run
  running with Slurm's reason in its status line; a job Slurm ended (time limit, cancelled, node failure)
  ends the run with Slurm's word for it. A job squeue has forgotten (MinJobAge: Workbench was closed while
  it ended) that left no exit record, or was killed by a signal, is looked up in Slurm's accounting
  (`sacct`, one call for all such jobs of the cluster) where the cluster keeps it; without accounting it
  is recorded lost, as before.
* cancel is `scancel`; adopt finds the job id the submit left in the run dir, or else the job squeue lists
  under the run's name and this Workbench's comment."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from workbench.errors import WorkbenchError
from workbench.execution.base import Chunk, Launch, RunState, exited, signal_reason
from workbench.execution.remote_process_executor import RemoteProcessExecutor, _check, env_file

if TYPE_CHECKING:
    from workbench.execution.hosts import SshHost
    from workbench.store import Store

DEFAULT_POLL = 30.0
MEMO_SECONDS = 1.0
PENDING_LOOK = 1.0      # while Slurm holds a job, its follower looks this often (nothing is written yet)
PENDING_RECHECK = 3.0   # and reads its run dir this often (a cancel records its end, a start its pid)
POLL_LEASE_TTL = 60.0
SQUEUE = ["squeue", "--me", "--array", "--noheader", "--states=all", "--format=%i|%T|%r|%j|%k"]  # a line per array task
ENDED = {  # Slurm's terminal states, said as a run's end
    "TIMEOUT": "time limit reached (Slurm TIMEOUT)", "CANCELLED": "cancelled in Slurm (CANCELLED)",
    "FAILED": "the job failed in Slurm (FAILED)", "NODE_FAIL": "its node failed (Slurm NODE_FAIL)",
    "PREEMPTED": "preempted (Slurm PREEMPTED)", "OUT_OF_MEMORY": "out of memory (Slurm OUT_OF_MEMORY)",
    "BOOT_FAIL": "its node did not boot (Slurm BOOT_FAIL)", "DEADLINE": "deadline reached (Slurm DEADLINE)",
    "COMPLETED": "the job ended without its exit record",
}
EXPLAINS_SIGNAL = set(ENDED) - {"COMPLETED", "FAILED"}  # Slurm's word says better why the signal came
PENDING_PREFIX = "Slurm: PENDING"
SACCT = ["env", "SLURM_TIME_FORMAT=%s", "sacct", "--noheader", "--parsable2", "--allocations",
         "--format=JobID,State,ExitCode,End,JobName"]
SACCT_TIMEOUT = 20.0
NO_ACCOUNTING_RETRY = 600.0  # a cluster without accounting is not asked again for this long (per process)
UNANSWERED = {"state": "UNANSWERED"}  # sacct failed this time (slurmdbd restarting): asked again next interval
RUNAWAY = 600.0  # a job squeue no longer lists that accounting still calls running ends `lost` after this
_RANGE = re.compile(r"^(\d+)_\[([\d,\-]+)(%\d+)?\]$")  # array tasks never started: "7_[2-5,9%2]"
REQUEUED = ("PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD")  # a job that ran, back in the queue
STILL_HELD = ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT")
_JOB_ID = re.compile(r"^\d+(_\d+)?$")
SLURM_TIME_FORM = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")


@dataclass
class SlurmSettings:
    partition: str | None = None
    account: str | None = None
    time: str | None = None          # sbatch --time, e.g. 04:00:00
    setup: str | None = None         # a shell line run before the experiment
    poll: float = DEFAULT_POLL       # seconds between squeue calls for this cluster

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SlurmSettings":
        return cls(config.get("partition"), config.get("account"), config.get("time"), config.get("setup"),
                   float(config.get("poll") or DEFAULT_POLL))


def time_rounding(limit: str | None) -> str | None:
    """What Slurm makes of a time limit with seconds in it (its limits are whole minutes, rounded up), said;
    None when it keeps the limit as given. Forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    if not limit or not SLURM_TIME_FORM.match(limit):
        return None
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:  # D-H, D-H:M, D-H:M:S
        parts = [int(days) * 24 + parts[0], *parts[1:], 0, 0][:3]
    elif len(parts) < 3:  # M or M:S
        parts = [0, *parts, 0][:3]
    seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    if seconds % 60 == 0:
        return None
    minutes = -(-seconds // 60)
    return (f"Slurm counts time limits in whole minutes: --time {limit} ({seconds} s) becomes {minutes} minute"
            f"{'s' if minutes > 1 else ''} ({minutes // 60:02d}:{minutes % 60:02d}:00)")


def memory_option(memory: str | None) -> list[str]:
    """The spec's `memory` as sbatch's --mem in whole MiB (rounded up); none for 0 (no limit, as in Docker:
    Slurm's --mem=0 would take all of the node's memory)."""
    from workbench.projects.spec import size_bytes

    if not memory or size_bytes(memory) == 0:
        return []
    return [f"--mem={-(-size_bytes(memory) // 2**20)}M"]


def _q(value: str) -> str:
    return shlex.quote(value)


_SBATCH_ON_PATH = 'command -v sbatch >/dev/null 2>&1 || { echo "sbatch is not on PATH on this login node" >&2; exit 1; }'


def _write_job(run_dir: str, script: str) -> str:
    """Shell lines that write a run's batch script into its run dir (refusing a dir that holds a run)."""
    return f"""run={_q(run_dir)}
if [ -e "$run/job_id" ]; then echo "$run already holds a run" >&2; exit 1; fi
mkdir -p "$run/out" || exit 1
printf '%s' {_q(script)} > "$run/job.sh" || exit 1"""


def _sbatch(env: dict[str, str], arguments: str) -> str:
    """An sh command printing sbatch's answer, with the run's environment in sbatch's own environment: Slurm
    keeps it with the job (in slurmctld's state, not on the shared file system) and gives it to every attempt
    of the job, a requeued one included. The values come in this script, over the channel's stdin: never in
    a file or on a command line. sbatch runs under umask 077 (its jobs get it: slurm.out and the job's
    records are 0600); the login's umask goes to the job script as $1, for the experiment."""
    # the command line is made first: the values may set any name (PATH, IFS, ...), the positional ones excepted
    return f"""$(set -- "$(command -v sbatch)" --parsable --export=ALL {arguments} "$wb_umask"
{env_file(env)}exec "$@")"""


def _with_setup(argv: list[str], setup: str | None) -> list[str]:
    """The command, after the setup line(s) in the same bash (a `source` of a venv or a `module load` must
    change the command's environment; sites define `module` for bash), which then becomes the command."""
    if not setup:
        return argv
    return ["bash", "-c", f'{setup}\nexec "$@"', "workbench-setup", *argv]


def batch_script(run_dir: str, snapshot_dir: str, argv: list[str], env: dict[str, str], setup: str | None) -> str:
    """The job: its files 0600 whatever umask Slurm gives it; the experiment with the login's umask ($1). `env`
    holds only what differs between the tasks of one job array (params, run id, output paths: what the run's
    history shows anyway); the rest of the environment comes from sbatch's (see _sbatch)."""
    exports = "".join(f"export {name}={_q(value)}\n" for name, value in env.items())
    command = " ".join(_q(a) for a in _with_setup(argv, setup))
    return f"""#!/bin/sh
# Workbench run (written by SlurmExecutor.submit)
run={_q(run_dir)}
case $1 in *[!0-7]*|"") login_umask=077 ;; *) login_umask=$1 ;; esac
umask 077
child=
finish() {{
  sig=null
  if [ "$1" -gt 128 ] && [ "$1" -le 192 ]; then sig=$(($1 - 128)); fi
  printf '{{"exit_code": %s, "signal": %s, "finished_at": %s}}\\n' "$1" "$sig" "$(date +%s)" \\
    > "$run/exit_code.tmp" && mv -f "$run/exit_code.tmp" "$run/exit_code"
}}
fwd() {{ if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi; }}
trap fwd TERM INT
: >> "$run/stdout.log"; : >> "$run/stderr.log"
# requeued (preemption, node failure, scontrol requeue): the earlier attempt's end is not this run's end
if [ -f "$run/exit_code" ]; then mv -f "$run/exit_code" "$run/exit_code.attempt-${{SLURM_RESTART_COUNT:-0}}"; fi
job=$SLURM_JOB_ID; if [ -n "${{SLURM_ARRAY_JOB_ID:-}}" ]; then job="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"; fi
printf '{{"job": "%s", "node": "%s", "started_at": %s, "gpus": "%s"}}\\n' "$job" "$(hostname)" "$(date +%s)" \\
  "${{SLURM_JOB_GPUS:-${{CUDA_VISIBLE_DEVICES:-}}}}" > "$run/pid"
if ! cd {_q(snapshot_dir)} 2>/dev/null; then
  printf 'workbench: cannot enter the snapshot dir %s\\n' {_q(snapshot_dir)} >> "$run/stderr.log"
  finish 127
  exit 127
fi
(
  umask "$login_umask"
{exports}  exec {command}
) < /dev/null >> "$run/stdout.log" 2>> "$run/stderr.log" &
child=$!
wait "$child"
code=$?
if [ "$code" -gt 128 ]; then wait "$child" 2>/dev/null; again=$?; [ "$again" != 127 ] && code=$again; fi
finish "$code"
exit "$code"  # the job's exit code in Slurm's accounting is the experiment's
"""


class SlurmQueue:
    """What the cluster's jobs are doing, from one `squeue` per poll interval shared through the database:
    a process whose copy is older than the interval takes the poll lease, calls squeue once for all of
    this user's jobs, and stores the answer; every other look reads it."""

    def __init__(self, host: "SshHost", store: "Store", interval: float) -> None:
        self.host, self.store, self.interval = host, store, interval
        self.machine = host.name
        self._read: tuple[float, float | None, dict[str, dict[str, str]]] | None = None  # (when read, polled, jobs)
        self._accounted: dict[str, tuple[float, dict[str, Any] | None]] = {}  # job → (when asked, answer)
        self._no_accounting_until = 0.0
        self._accounting_lock = threading.Lock()

    def jobs(self) -> dict[str, dict[str, str]]:
        """The last answer; a follower's threads ask many times a second, so it is read from the database
        at most once a second in this process."""
        return self.answer()[1]

    def answer(self) -> tuple[float | None, dict[str, dict[str, str]]]:
        """(when it was asked, the jobs): the same answer, so a job is never judged by a newer poll time."""
        if self._read is not None and time.monotonic() - self._read[0] < MEMO_SECONDS:
            return self._read[1], self._read[2]
        polled, jobs = self._jobs()
        self._read = (time.monotonic(), polled, jobs)
        return polled, jobs

    def held(self, job: str, submitted_at: float | None) -> bool:
        """Slurm holds the job (PENDING), or it was submitted after the last answer (which cannot know it
        yet), or there is no answer yet (another process is asking the first time). A failing squeue says
        nothing: not held, so a follower reads its files as usual."""
        try:
            polled, jobs = self.answer()
            info = jobs.get(job)
            if info is None:
                return submitted_at is not None and (polled is None or polled < submitted_at)
        except Exception:  # noqa: BLE001 - squeue or the database failing: the caller reads the files
            return False
        return info["state"] == "PENDING"

    def _jobs(self) -> tuple[float | None, dict[str, dict[str, str]]]:
        from workbench.execution.ingest import new_owner, owner_gone

        found = self.store.slurm_poll(self.machine)
        if found is not None and time.time() - found[0] < self.interval:
            return found[0], found[1]
        owner = new_owner()
        lease = f"slurm-poll:{self.machine}"
        if not self.store.acquire_lease(lease, owner, POLL_LEASE_TTL):
            holder = self.store.lease_holder(lease)
            if not (holder and owner_gone(holder)):
                return (found[0], found[1]) if found else (None, {})  # another process is asking now
            self.store.release_lease(lease, holder)  # it died asking (a CLI that exited mid-poll)
            if not self.store.acquire_lease(lease, owner, POLL_LEASE_TTL):
                return (found[0], found[1]) if found else (None, {})
        try:
            found = self.store.slurm_poll(self.machine)  # asked by another process while we took the lease?
            if found is not None and time.time() - found[0] < self.interval:
                return found[0], found[1]
            asked = time.time()
            jobs = self._squeue()
            self.store.save_slurm_poll(self.machine, jobs, asked)
            self._note_pending(jobs)
            return asked, jobs
        finally:
            self.store.release_lease(lease, owner)

    def accounted(self, job: str) -> dict[str, Any] | None:
        """How Slurm's accounting says the job ended or stands — {"state", "exit_code", "signal",
        "finished_at"} — UNANSWERED when sacct failed this time (asked again after one interval), or None:
        the cluster keeps no accounting (asked again in 10 minutes) or the job is not in it. One sacct call
        asks for every job of this cluster's active runs that squeue no longer lists or lists as ended (a
        reconcile after a night away asks once, not once per run); an end is kept for good, anything else
        for one poll interval. Never raises: accounting is a fallback."""
        with self._accounting_lock:  # a follower's threads ask at once: one call
            now = time.monotonic()
            asked = self._accounted.get(job)
            if asked is not None and ((asked[1] or {}).get("state") in ENDED or now - asked[0] < self.interval):
                return asked[1]
            if now < self._no_accounting_until:
                return None
            wanted_ids, names = [job], {}
            try:
                listed = self.jobs()
                names = self._active_jobs()
                wanted_ids = sorted(j for j in {job, *names} if _JOB_ID.match(j)
                                    and (j == job or j not in listed or listed[j]["state"] in ENDED)
                                    and (self._accounted.get(j, (0, None))[1] or {}).get("state") not in ENDED)
                if not wanted_ids:
                    return None
                status, out, err = self.host.connection.run([*SACCT, f"--jobs={','.join(wanted_ids)}"],
                                                            timeout=SACCT_TIMEOUT)
            except Exception:  # noqa: BLE001 - the login node or the database failing: asked again later
                status, out, err = -1, b"", b""
            said = err.decode(errors="replace").lower()
            if status != 0 and (status == 127 or "disabled" in said or "not found" in said):
                self._no_accounting_until = now + NO_ACCOUNTING_RETRY  # no accounting on this cluster
                return None
            if status != 0:  # slurmdbd restarting, a database error, the connection: not an answer
                for j in wanted_ids:
                    self._accounted[j] = (now, UNANSWERED)
                return UNANSWERED
            found = parse_sacct(out.decode(errors="replace"))
            for j in wanted_ids:
                answer = found.get(j)
                if answer is not None and not _named_for(j, answer["name"], names.get(j)):
                    answer = None  # a recycled job id: another job's record
                self._accounted[j] = (now, answer)
            return self._accounted[job][1]

    def unlisted_for(self, run_id: str, job: str) -> float:
        """Seconds since squeue was first seen not to list the job (an event of the run, so that the short
        CLI processes that look at it one after another count from the same moment)."""
        seen = [e["ts"] for e in self.store.events(run_id) if e["kind"] == "unlisted"]
        if not seen:
            self.store.add_event(run_id, "unlisted", f"Slurm's squeue no longer lists job {job}")
            return 0.0
        return time.time() - seen[0]

    def note_requeued(self, run_id: str, job: str, reason: str, attempt_ended: float | None) -> None:
        """The requeue as an event of the run (once per attempt, whichever process sees it first)."""
        mark = f"attempt ended {int(attempt_ended or 0)}"
        if any(e["kind"] == "requeued" and mark in e["message"] for e in self.store.events(run_id)):
            return
        self.store.add_event(run_id, "requeued", f"Slurm requeued job {job} ({reason or 'requeued'}; {mark}): "
                                                 "the same run goes on when it starts again")

    def note_cancelled(self, run_id: str, job: str) -> None:
        """A job cancelled in Slurm that Workbench did not cancel (`scancel` by the user, an admin): the run
        is a cancelled one, not a failure; Slurm's word is an event of it."""
        run = self.store.get_run(run_id)
        if run["status"] in ("queued", "running") and not run.get("cancel_requested"):
            self.store.add_event(run_id, "cancelled", f"Slurm cancelled job {job} (CANCELLED), not Workbench: "
                                                      "scancel, or the cluster's administrators")
            self.store.update_run(run_id, cancel_requested=1)

    def note_gpus(self, run_id: str, job: str, started: dict[str, Any]) -> None:
        """The GPUs Slurm gave the job (the indices its batch script found in SLURM_JOB_GPUS when it started),
        recorded with the run as `<node>:gpu<index>` (Slurm picks them: nothing was reserved here)."""
        indices = [i for i in str(started.get("gpus") or "").split(",") if i.strip().isdigit()]
        if not indices:
            return
        node = str(started.get("node") or "?")
        given = [f"{node}:gpu{i.strip()}" for i in indices]
        if self.store.get_run(run_id).get("gpu_uuids") != given:
            self.store.update_run(run_id, gpu_uuids=given)
            self.store.add_event(run_id, "gpus", f"Slurm gave job {job} {len(given)} GPU(s) on {node}: index "
                                                 f"{', '.join(i.strip() for i in indices)} (CUDA_VISIBLE_DEVICES)")

    def _active_jobs(self) -> dict[str, str]:
        """job id -> run id, for this cluster's queued and running runs."""
        return {str((r.get("handle") or {}).get("job")): r["id"] for r in self.store.active_runs()
                if r.get("machine") == self.machine}

    def squeue_now(self, *only: str) -> dict[str, dict[str, str]]:
        """An squeue of its own (not the shared answer), e.g. of the jobs of one name; raises if it fails."""
        return self._squeue(list(only))

    def _squeue(self, only: list[str] | None = None) -> dict[str, dict[str, str]]:
        status, out, err = self.host.connection.run([*SQUEUE, *(only or [])], timeout=60)
        if status != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise WorkbenchError(f"{self.machine}: squeue failed: {lines[-1] if lines else f'exit status {status}'}")
        jobs = {}
        for line in out.decode(errors="replace").splitlines():
            parts = line.strip().split("|", 4)
            if len(parts) == 5 and _JOB_ID.match(parts[0]):
                jobs[parts[0]] = {"state": parts[1].split()[0] if parts[1] else "", "reason": parts[2], "name": parts[3],
                                  "comment": parts[4]}
        return jobs

    def _note_pending(self, jobs: dict[str, dict[str, str]]) -> None:
        """A pending run says why Slurm holds it ("Slurm: PENDING (Resources)"); a started one stops saying it."""
        by_job: dict[str, str] | None = None
        for job, info in jobs.items():
            name = info.get("name") or ""
            if name.startswith("wb-array-"):  # a sweep's job array: its tasks are known by job id
                if by_job is None:
                    by_job = self._active_jobs()
                if job not in by_job:
                    continue
                run_id = by_job[job]
            elif name.startswith("wb-"):
                run_id = name[3:]
            else:
                continue
            try:
                run = self.store.get_run(run_id)
            except Exception:  # noqa: BLE001 - a job of another Workbench, or a run deleted since
                continue
            if run["status"] != "running":
                continue
            reason = run.get("status_reason") or ""
            if info["state"] == "PENDING":
                why = info["reason"] if info["reason"] not in ("", "None") else "not yet looked at by the scheduler"
                wanted = f"{PENDING_PREFIX} ({why})"
                if reason != wanted:
                    self.store.update_run(run_id, status_reason=wanted)
                    self.store.add_event(run_id, "pending", f"Slurm holds it: {why}")
            elif reason.startswith(PENDING_PREFIX):
                self.store.update_run(run_id, status_reason=None)
                if info["state"] == "RUNNING":
                    self.store.add_event(run_id, "running", "Slurm started it")


def parse_sacct(text: str) -> dict[str, dict[str, Any]]:
    """`sacct --parsable2 --allocations --format=JobID,State,ExitCode,End,JobName` (times as epoch seconds)
    by job id, for jobs named as Workbench names them (a recycled job id is another job): "CANCELLED by
    1000" is CANCELLED; ExitCode is `code:signal`; a range of array tasks that never started ("7_[2-5]",
    cancelled or ended with the array) stands for each of its tasks."""
    jobs: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|", 4)
        if len(parts) < 5 or not parts[1] or not parts[4].startswith("wb-"):
            continue
        code, _, sig = parts[2].partition(":")
        found = {"state": parts[1].split()[0], "exit_code": int(code) if code.isdigit() else None,
                 "signal": int(sig) if sig.isdigit() else 0,
                 "finished_at": float(parts[3]) if parts[3].isdigit() else None, "name": parts[4]}
        if _JOB_ID.match(parts[0]):
            jobs[parts[0]] = found
        elif (tasks := _RANGE.match(parts[0])) and found["state"] in ENDED:
            for piece in tasks.group(2).split(","):
                first, _, last = piece.partition("-")
                if first.isdigit() and (last or first).isdigit() and int(last or first) - int(first) < 100_000:
                    for i in range(int(first), int(last or first) + 1):
                        jobs.setdefault(f"{tasks.group(1)}_{i}", found)
    return jobs


def _named_for(job: str, name: str, run_id: str | None) -> bool:
    """The accounting record is the run's job: an array task's job is its sweep's array, a run's own job
    is named after the run (any Workbench name where the run is not known here)."""
    if "_" in job:
        return name.startswith("wb-array-")
    return name == f"wb-{run_id}" if run_id else name.startswith("wb-")


def slurms_word(state: str, reason: str | None) -> str | None:
    """Why a run killed by a signal ended, where Slurm says it better (a time limit, a cancel, its node)."""
    return ENDED[state] if state in EXPLAINS_SIGNAL else reason


def ended_by_accounting(found: dict[str, Any], started_at: float | None) -> RunState:
    """A job's end as Slurm's accounting recorded it, for a job that left no exit record (the batch script
    exits with the experiment's code, so a COMPLETED job's 0 is the experiment's)."""
    state, code, sig = found["state"], found["exit_code"], found["signal"]
    finished = found["finished_at"] or time.time()
    if state == "COMPLETED" and code == 0 and not sig:
        return RunState("exited", exit_code=0, started_at=started_at, finished_at=finished)
    if code is not None and 128 < code <= 192 and not sig:
        sig, code = code - 128, None  # the script's own exit after its child was killed by a signal
    if state in EXPLAINS_SIGNAL:
        reason, code = ENDED[state], None
    elif sig or code:
        reason = (signal_reason(sig) if sig else f"exit code {code}") + \
            f" (Slurm {state}; from its accounting: the job left no exit record)"
    else:
        reason, code = f"{ENDED.get(state, state)}; from its accounting: the job left no exit record", None
    return RunState("exited", exit_code=None if sig else code, reason=reason, started_at=started_at,
                    finished_at=finished)


class SlurmExecutor(RemoteProcessExecutor):
    name = "slurm"

    def __init__(self, host: "SshHost", store: "Store", settings: SlurmSettings, instance: str) -> None:
        super().__init__(host)
        self.settings, self.instance = settings, instance
        self.queue = SlurmQueue(host, store, settings.poll)
        self._seen_started: set[str] = set()  # jobs whose start this process saw in their run dir
        self._gpus_noted: set[str] = set()  # jobs whose GPUs this process recorded (or found none)

    def submit(self, launch: Launch) -> dict[str, Any]:
        env, [(run_dir, script)] = self._job_scripts([launch])
        options = [f"--job-name=wb-{launch.run_id}", f"--comment=workbench:{self.instance}:{launch.run_id}",
                   f"--output={posixpath.join(run_dir, 'slurm.out')}", f"--chdir={run_dir}", *self._options(launch)]
        submit = f"""{_SBATCH_ON_PATH}
{_write_job(run_dir, script)}
id={_sbatch(env, ' '.join(_q(o) for o in options) + ' "$run/job.sh"')} || exit 1
id=${{id%%;*}}
printf '%s\\n' "$id" > "$run/job_id"
printf 'job %s\\n' "$id"
"""
        job = self._submitted(self.host.sh(submit, timeout=120, what="submitting the job (sbatch)",
                                           login_umask=True))
        self._say_time_rounding([launch])
        return {"run_dir": run_dir, "machine": self.host.name, "job": job, "started_at": time.time()}

    def submit_many(self, launches: list[Launch], max_parallel: int, group: str) -> list[dict[str, Any]]:
        """Runs of one sweep as one job array (`--array=0-N%max_parallel`: Slurm keeps to max_parallel),
        task i running launches[i]'s job script; each run's job is `<array id>_<i>`. The resources asked
        are the first launch's (a sweep's trials share an experiment)."""
        shared, scripts = self._job_scripts(launches)
        folder = posixpath.join(self.host.root, "arrays")
        array = posixpath.join(folder, f"{group}-{int(time.time() * 1000)}.sh")
        cases = "".join(f"{i}) run={_q(run_dir)} ;;\n" for i, (run_dir, _) in enumerate(scripts))
        array_script = ("#!/bin/sh\n# Workbench job array (written by SlurmExecutor.submit_many)\n"
                        f'case "$SLURM_ARRAY_TASK_ID" in\n{cases}'
                        '*) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;\nesac\n'
                        'exec sh "$run/job.sh" "$1" > "$run/slurm.out" 2>&1\n')
        options = [f"--array=0-{len(launches) - 1}%{max(1, max_parallel)}", f"--job-name=wb-array-{group}",
                   f"--comment=workbench:{self.instance}:array:{group}", "--output=/dev/null",
                   f"--chdir={folder}", *self._options(launches[0])]
        writes = "\n".join(_write_job(run_dir, script) for run_dir, script in scripts)
        ids = "".join(f"printf '%s_{i}\\n' \"$id\" > {_q(posixpath.join(run_dir, 'job_id'))}\n"
                      for i, (run_dir, _) in enumerate(scripts))
        submit = f"""{_SBATCH_ON_PATH}
{writes}
mkdir -p {_q(folder)} || exit 1
printf '%s' {_q(array_script)} > {_q(array)} || exit 1
id={_sbatch(shared, ' '.join(_q(o) for o in options) + ' ' + _q(array))} || exit 1
id=${{id%%;*}}
{ids}printf 'job %s\\n' "$id"
"""
        job = self._submitted(self.host.sh(submit, timeout=300, what="submitting the job array (sbatch)",
                                           login_umask=True))
        self._say_time_rounding(launches)
        now = time.time()
        return [{"run_dir": run_dir, "machine": self.host.name, "job": f"{job}_{i}", "started_at": now}
                for i, (run_dir, _) in enumerate(scripts)]

    def _env(self, launch: Launch) -> dict[str, str]:
        if launch.mounts:
            raise WorkbenchError(f"{self.host.name} is a Slurm cluster: `mounts` need a container runtime there",
                                 hint="remove mounts for this machine (Apptainer/Pyxis support is a later step)")
        out = posixpath.join(str(launch.run_dir), "out")
        return {**launch.env, "WORKBENCH_OUTPUT": out, "WORKBENCH_METRICS": posixpath.join(out, "metrics.jsonl")}

    def _job_scripts(self, launches: list[Launch]) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """(the environment for sbatch's, [(run dir, batch script)] for each launch). A sweep's trials share
        their experiment's environment, given through sbatch's; each job script sets only what is its own
        (params, run id, output paths: what its run's history shows anyway) and any SLURM_/SBATCH_ name (in
        sbatch's environment those would be read as sbatch's own options)."""
        envs = [self._env(launch) for launch in launches]
        shared = {k: v for k, v in envs[0].items() if all(e.get(k) == v for e in envs[1:])
                  and not k.startswith(("SLURM_", "SBATCH_"))}
        return shared, [self._job_script(launch, {k: v for k, v in env.items() if k not in shared}, shared)
                           for launch, env in zip(launches, envs)]

    def _job_script(self, launch: Launch, own: dict[str, str], shared: dict[str, str]) -> tuple[str, str]:
        """(run dir, batch script): `own` is the environment the script sets itself, `shared` what sbatch's
        environment gives it."""
        run_dir = str(launch.run_dir)
        argv = [a.replace("{output}", posixpath.join(run_dir, "out")) for a in launch.argv]
        _check(argv, {**shared, **own})
        setup = "\n".join(line for line in (self.settings.setup, launch.setup) if line) or None  # machine's, then experiment's
        return run_dir, batch_script(run_dir, str(launch.snapshot_dir), argv, own, setup)

    def _options(self, launch: Launch) -> list[str]:
        """sbatch's resources: GPUs, memory and CPUs from the experiment (else the partition's defaults), and
        the machine's partition, account and time limit."""
        s = self.settings
        options = [f"--gres=gpu:{launch.gpus}"] if launch.gpus else []
        options += memory_option(launch.memory) + [f"--cpus-per-task={launch.cpus}"] * bool(launch.cpus)
        options += [f"--partition={s.partition}"] * bool(s.partition) + [f"--account={s.account}"] * bool(s.account)
        return options + [f"--time={s.time}"] * bool(s.time)

    def _say_time_rounding(self, launches: list[Launch]) -> None:
        """A time limit Slurm rounds up (whole minutes) is a warning event of each run submitted with it."""
        if (rounded := time_rounding(self.settings.time)) is not None:
            for launch in launches:
                self.queue.store.add_event(launch.run_id, "warning", rounded)

    def _submitted(self, output: bytes) -> str:
        text = output.decode(errors="replace")
        job = next((line.split()[1] for line in text.splitlines() if line.startswith("job ") and len(line.split()) > 1),
                   None)
        if not job or not _JOB_ID.match(job):
            raise WorkbenchError(f"{self.host.name}: sbatch gave no job id ({text.strip()[:200]!r})")
        return job

    def status(self, handle: dict[str, Any]) -> RunState:
        """The job's state (below; a full disk said as such), with what Slurm decided beside it written to the
        run: the GPUs it gave the job, and a cancel that came from outside Workbench."""
        found = self.with_full_disk(self._status(handle), handle["run_dir"])
        job, run_id = str(handle.get("job") or ""), posixpath.basename(handle["run_dir"].rstrip("/"))
        if found.state == "exited" and found.reason == ENDED["CANCELLED"] and job:
            self.queue.note_cancelled(run_id, job)
        if job and job not in self._gpus_noted and (found.state == "exited" or job in self._seen_started
                                                    or self.queue.jobs().get(job, {}).get("state") == "RUNNING"):
            started = _json(self.host.read_small(posixpath.join(handle["run_dir"], "pid")) or b"")
            if started.get("job") == job:
                self._gpus_noted.add(job)
                self.queue.note_gpus(run_id, job, started)
        return found

    def _status(self, handle: dict[str, Any]) -> RunState:
        job = str(handle.get("job") or "")
        record = self.host.read_small(posixpath.join(handle["run_dir"], "exit_code"))
        polled, jobs = self.queue.answer()
        info = jobs.get(job) if job else None
        state = (info or {}).get("state", "")
        if record is not None:
            written = _json(record)
            if written.get("never_started"):
                return RunState("exited", exit_code=None, reason="cancelled while Slurm held it (PENDING)",
                                started_at=handle.get("started_at"), finished_at=written.get("finished_at"))
            ended = exited(written, handle.get("started_at"))
            if state in ENDED and state != "COMPLETED":
                ended.reason = slurms_word(state, ended.reason)
            elif state in REQUEUED and (ended.reason or (polled or 0) > (ended.finished_at or float("inf"))):
                # the attempt was killed (or ended with a code the site requeues) and Slurm queued it again
                self.queue.note_requeued(posixpath.basename(handle["run_dir"].rstrip("/")), job,
                                         (info or {}).get("reason") or "", ended.finished_at)
                return RunState("running", started_at=handle.get("started_at"))
            elif ended.reason and job and state in STILL_HELD and self._may_say_more(ended.finished_at):
                # killed by a signal while Slurm still holds the job: its next look tells whether Slurm did it
                # (a time limit, scancel, a requeue) — waited for, not asked for, up to a few intervals
                return RunState("running", started_at=handle.get("started_at"))
            elif ended.reason and job and not state and (found := self.queue.accounted(job)):
                ended.reason = slurms_word(found["state"], ended.reason)  # squeue forgot it: accounting says
            return ended
        if state in ENDED:
            # killed before it could write its record (SIGKILL after the time limit's grace): a moment more
            # for a record that is being written, then Slurm's word for it (its accounting's, where kept:
            # the signal or exit code)
            time.sleep(0.5)
            record = self.host.read_small(posixpath.join(handle["run_dir"], "exit_code"))
            if record is not None:
                return self._status(handle)
            if state == "COMPLETED":  # the script exits with the experiment's code: 0
                return RunState("exited", exit_code=0, started_at=handle.get("started_at"), finished_at=time.time())
            found = self.queue.accounted(job)
            if found is not None and found["state"] == state:
                return ended_by_accounting(found, handle.get("started_at"))
            if found is not None:  # accounting not answering, or not there yet: looked at again next time
                return RunState("running", started_at=handle.get("started_at"))
            return RunState("exited", exit_code=None, reason=ENDED[state], started_at=handle.get("started_at"),
                            finished_at=time.time())
        if info is None and job:
            if all(self.host.read_small(posixpath.join(handle["run_dir"], name)) is None for name in ("job_id", "pid")):
                return RunState("missing", reason="its job left no trace in its run dir")
            if polled is not None and polled > (handle.get("started_at") or 0) + 2 * self.settings.poll:
                accounted = self.queue.accounted(job)
                if accounted is not None and accounted["state"] in ENDED:
                    return ended_by_accounting(accounted, handle.get("started_at"))
                run_id = posixpath.basename(handle["run_dir"].rstrip("/"))
                if accounted is not None and self.queue.unlisted_for(run_id, job) < RUNAWAY:
                    # accounting still calls it running (its end not recorded yet), or did not answer
                    return RunState("running", started_at=handle.get("started_at"))
                said = (" and its accounting does not answer" if accounted is UNANSWERED else
                        f" and its accounting says {accounted['state']}" if accounted else "")
                return RunState("missing", reason=f"Slurm no longer knows job {job}{said}; it left no exit record")
        return RunState("running", started_at=handle.get("started_at"))

    # a job Slurm holds has written nothing: its follower waits cheaply (a look at the shared squeue answer)
    # rather than reading its files over SFTP several times a second — a sweep's 100 pending array tasks
    # would otherwise keep the login node's sshd busy
    def held(self, handle: dict[str, Any]) -> bool:
        """Slurm still holds the job (PENDING): it has written nothing, and needs no follower yet. A job this
        process saw start (its `pid` record) is not held, whatever the last squeue answer says."""
        job = str(handle.get("job") or "")
        return job not in self._seen_started and self.queue.held(job, handle.get("started_at"))

    def _wait_while_pending(self, handle: dict[str, Any], stop: threading.Event | None = None) -> None:
        """Waits while the job is held, looking at its run dir every few seconds: a cancel records its end
        there at once, and a job that started (before the next squeue says so) writes its `pid` record."""
        recheck = time.monotonic() + PENDING_LOOK
        while self.held(handle) and not (stop is not None and stop.is_set()):
            if time.monotonic() > recheck:
                if self.host.read_small(posixpath.join(handle["run_dir"], "exit_code")) is not None:
                    return
                if self.host.read_small(posixpath.join(handle["run_dir"], "pid")) is not None:
                    self._seen_started.add(str(handle.get("job") or ""))
                    return
                # a job squeue has not listed yet was submitted a moment ago and may be starting: looked at
                # each second; one squeue says is PENDING may wait long: less often
                listed = str(handle.get("job") or "") in self.queue.jobs()
                recheck = time.monotonic() + (PENDING_RECHECK if listed else PENDING_LOOK)
            if stop is not None:
                stop.wait(PENDING_LOOK)
            else:
                time.sleep(PENDING_LOOK)

    def read_logs(self, handle: dict[str, Any], offset: str, follow: bool) -> Iterator[Chunk]:
        if follow:
            self._wait_while_pending(handle)
        yield from super().read_logs(handle, offset, follow)

    def progress(self, handle: dict[str, Any], stop: threading.Event) -> Iterator[str]:
        self._wait_while_pending(handle, stop)
        yield from super().progress(handle, stop)

    def read_metrics(self, handle: dict[str, Any], offset: str, limit: int, final: bool) -> Chunk:
        if not final and self.held(handle):
            return Chunk(b"", offset)
        return super().read_metrics(handle, offset, limit, final)

    def _may_say_more(self, finished_at: float | None) -> bool:
        return finished_at is not None and time.time() - finished_at <= 3 * self.settings.poll + 5

    def cancel(self, handle: dict[str, Any]) -> None:
        self.cancel_many([handle])

    def cancel_many(self, handles: list[dict[str, Any]]) -> None:
        """One scancel for all of them (a sweep's array tasks). A job Slurm had not started yet never will:
        its end is recorded here, at once (the batch script writes `pid` when it starts, and records its own
        end once it has); the ones that were running are given a moment to record theirs."""
        handles = [h for h in handles if _JOB_ID.match(str(h.get("job") or ""))]
        if not handles:
            return
        never = "".join(f"""run={_q(h["run_dir"])}
if [ ! -e "$run/pid" ] && [ ! -e "$run/exit_code" ]; then
  printf '{{"exit_code": null, "never_started": true, "finished_at": %s}}\\n' "$(date +%s)" > "$run/exit_code"
fi
""" for h in handles)
        self.host.sh(f"scancel {' '.join(_q(str(h['job'])) for h in handles)} || exit 1\n{never}", timeout=120,
                     what="cancelling the job (scancel)")
        deadline = time.monotonic() + 15
        left = list(handles)
        while left and time.monotonic() < deadline:  # each batch script forwards the signal and records its end
            left = [h for h in left if self.host.read_small(posixpath.join(h["run_dir"], "exit_code")) is None]
            if left:
                time.sleep(0.2)

    def adopt(self, run_id: str, run_dir: str, by_name: bool = True) -> dict[str, Any] | None:
        """The run's job: from the `job_id` its submit wrote, else (the submit died between sbatch and that
        write) the id the job wrote when it started, else (`by_name`) the job squeue lists under the run's
        name with this Workbench's comment (an array task has its array's name: not found that way)."""
        found = self.host.read_small(posixpath.join(str(run_dir), "job_id"))
        job = found.decode(errors="replace").strip() if found is not None else ""
        if not _JOB_ID.match(job):
            if self.host.read_small(posixpath.join(str(run_dir), "job.sh")) is None:
                return None  # never got as far as sbatch
            started = _json(self.host.read_small(posixpath.join(str(run_dir), "pid")) or b"")
            job = str(started.get("job") or "") or (by_name and self._job_named(run_id)) or ""
        if not _JOB_ID.match(job):
            return None
        return {"run_dir": str(run_dir), "machine": self.host.name, "job": job, "started_at": time.time()}

    def _job_named(self, run_id: str) -> str | None:
        """The job squeue lists now under the run's name with this Workbench's comment (asked directly: the
        shared answer may predate the sbatch). A squeue that fails raises: the run is left as it is."""
        comment = f"workbench:{self.instance}:{run_id}"
        return next((job for job, info in self.queue.squeue_now(f"--name=wb-{run_id}").items()
                     if info["comment"] == comment), None)


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode(errors="replace") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
