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
  database (slurm_queue.SlurmQueue, through RunNotes), so the scheduler sees the poll rate, never the number
  of runs. PENDING keeps the run running with Slurm's reason in its status line; a job Slurm ended (time
  limit, cancelled, node failure) ends the run with Slurm's word for it. A job squeue has forgotten
  (MinJobAge: Workbench was closed while it ended) that left no exit record, or was killed by a signal, is
  looked up in Slurm's accounting (`sacct`, one call for all such jobs of the cluster) where the cluster
  keeps it; without accounting it is recorded lost, as before.
* cancel is `scancel`; adopt finds the job id the submit left in the run dir, or else the job squeue lists
  under the run's name and this Workbench's comment."""

from __future__ import annotations

import json
import posixpath
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from workbench.errors import WorkbenchError
from workbench.execution import runtime
from workbench.execution.scripts import FINISH, q
from workbench.execution.backends.slurm_queue import (ENDED, JOB_ID, UNANSWERED, RUNAWAY, SlurmQueue,
                                                      ended_by_accounting, slurms_word)
from workbench.execution.backends.ssh_process import RemoteProcessExecutor, _check, env_file
from workbench.execution.base import BackendSettings, Chunk, Handle, Launch, Machine, RunState, exited

if TYPE_CHECKING:
    from workbench.execution.hosts import SshHost

DEFAULT_POLL = 30.0
PENDING_LOOK = 1.0      # while Slurm holds a job, its follower looks this often (nothing is written yet)
PENDING_RECHECK = 3.0   # and reads its run dir this often (a cancel records its end, a start its pid)
REQUEUED = ("PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD")  # a job that ran, back in the queue
STILL_HELD = ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT")
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


_SBATCH_ON_PATH = 'command -v sbatch >/dev/null 2>&1 || { echo "sbatch is not on PATH on this login node" >&2; exit 1; }'


def _write_job(run_dir: str, script: str) -> str:
    """Shell lines that write a run's batch script into its run dir (refusing a dir that holds a run)."""
    return f"""run={q(run_dir)}
if [ -e "$run/job_id" ]; then echo "$run already holds a run" >&2; exit 1; fi
mkdir -p "$run/out" || exit 1
printf '%s' {q(script)} > "$run/job.sh" || exit 1"""


def _sbatch(env: dict[str, str], arguments: str) -> str:
    """An sh command printing sbatch's answer, with the run's environment in sbatch's own environment: Slurm
    keeps it with the job (in slurmctld's state, not on the shared file system) and gives it to every attempt
    of the job, a requeued one included. The values come in this script, over the channel's stdin: never in
    a file or on a command line. sbatch runs under umask 077 (its jobs get it: slurm.out and the job's
    records are 0600); the login's umask goes to the job script as $1, for the experiment."""
    # the command line is made first: the values may set any name (PATH, IFS, ...), the positional ones excepted
    return f"""$(set -- "$(command -v sbatch)" --parsable --export=ALL {arguments} "$wb_umask"
{env_file(env)}exec "$@")"""


def _with_setup(argv: list[str], setup: str | None, on_path: str) -> list[str]:
    """The command, after the setup line(s) in the same bash (a `source` of a venv or a `module load` must
    change the command's environment; sites define `module` for bash), which then becomes the command. The
    runtime goes first on PYTHONPATH after them (a setup line may set PYTHONPATH)."""
    if not setup:
        return argv
    return ["bash", "-c", f'{setup}\n{on_path}exec "$@"', "workbench-setup", *argv]


def batch_script(run_dir: str, snapshot_dir: str, argv: list[str], env: dict[str, str], setup: str | None,
                 runtime_dir: str | None = None) -> str:
    """The job: its files 0600 whatever umask Slurm gives it; the experiment with the login's umask ($1). `env`
    holds only what differs between the tasks of one job array (params, run id, output paths: what the run's
    history shows anyway); the rest of the environment comes from sbatch's (see _sbatch). The runtime is put
    first on PYTHONPATH just before the command, ahead of what the job's environment has then."""
    on_path = runtime.on_path_line(runtime_dir)
    exports = "".join(f"export {name}={q(value)}\n" for name, value in env.items()) + ("" if setup else on_path)
    command = " ".join(q(a) for a in _with_setup(argv, setup, on_path))
    return f"""#!/bin/sh
# Workbench run (written by SlurmExecutor.submit)
run={q(run_dir)}
case $1 in *[!0-7]*|"") login_umask=077 ;; *) login_umask=$1 ;; esac
umask 077
child=
{FINISH}
fwd() {{ if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi; }}
trap fwd TERM INT
: >> "$run/stdout.log"; : >> "$run/stderr.log"
# requeued (preemption, node failure, scontrol requeue): the earlier attempt's end is not this run's end
if [ -f "$run/exit_code" ]; then mv -f "$run/exit_code" "$run/exit_code.attempt-${{SLURM_RESTART_COUNT:-0}}"; fi
job=$SLURM_JOB_ID; if [ -n "${{SLURM_ARRAY_JOB_ID:-}}" ]; then job="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"; fi
printf '{{"job": "%s", "node": "%s", "started_at": %s, "gpus": "%s"}}\\n' "$job" "$(hostname)" "$(date +%s)" \\
  "${{SLURM_JOB_GPUS:-${{CUDA_VISIBLE_DEVICES:-}}}}" > "$run/pid"
if ! cd {q(snapshot_dir)} 2>/dev/null; then
  printf 'workbench: cannot enter the snapshot dir %s\\n' {q(snapshot_dir)} >> "$run/stderr.log"
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


class SlurmExecutor(RemoteProcessExecutor):
    name = "slurm"

    def __init__(self, machine: Machine, host: "SshHost", settings: BackendSettings) -> None:
        if settings.notes is None:
            raise TypeError("a Slurm backend reports through RunNotes (BackendSettings.notes)")
        super().__init__(machine, host, settings)
        self.settings = SlurmSettings.from_config(machine.config.get("slurm") or {})
        self.instance = settings.instance
        self.notes = settings.notes
        self.queue = SlurmQueue(host, settings.notes, self.settings.poll)
        self._seen_started: set[str] = set()  # jobs whose start this process saw in their run dir
        self._gpus_noted: set[str] = set()  # jobs whose GPUs this process recorded (or found none)

    def submit(self, launch: Launch) -> Handle:
        env, [(run_dir, script)] = self._job_scripts([launch])
        options = [f"--job-name=wb-{launch.run_id}", f"--comment=workbench:{self.instance}:{launch.run_id}",
                   f"--output={posixpath.join(run_dir, 'slurm.out')}", f"--chdir={run_dir}", *self._options(launch)]
        submit = f"""{_SBATCH_ON_PATH}
{_write_job(run_dir, script)}
id={_sbatch(env, ' '.join(q(o) for o in options) + ' "$run/job.sh"')} || exit 1
id=${{id%%;*}}
printf '%s\\n' "$id" > "$run/job_id"
printf 'job %s\\n' "$id"
"""
        job = self._submitted(self.host.sh(submit, timeout=120, what="submitting the job (sbatch)",
                                           login_umask=True))
        self._say_time_rounding([launch])
        return Handle(run_dir, self.host.name, job=job, started_at=time.time())

    def submit_many(self, launches: list[Launch], max_parallel: int, group: str) -> list[Handle]:
        """Runs of one sweep as one job array (`--array=0-N%max_parallel`: Slurm keeps to max_parallel),
        task i running launches[i]'s job script; each run's job is `<array id>_<i>`. The resources asked
        are the first launch's (a sweep's trials share an experiment)."""
        shared, scripts = self._job_scripts(launches)
        folder = posixpath.join(self.host.root, "arrays")
        array = posixpath.join(folder, f"{group}-{int(time.time() * 1000)}.sh")
        cases = "".join(f"{i}) run={q(run_dir)} ;;\n" for i, (run_dir, _) in enumerate(scripts))
        array_script = ("#!/bin/sh\n# Workbench job array (written by SlurmExecutor.submit_many)\n"
                        f'case "$SLURM_ARRAY_TASK_ID" in\n{cases}'
                        '*) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;\nesac\n'
                        'exec sh "$run/job.sh" "$1" > "$run/slurm.out" 2>&1\n')
        options = [f"--array=0-{len(launches) - 1}%{max(1, max_parallel)}", f"--job-name=wb-array-{group}",
                   f"--comment=workbench:{self.instance}:array:{group}", "--output=/dev/null",
                   f"--chdir={folder}", *self._options(launches[0])]
        writes = "\n".join(_write_job(run_dir, script) for run_dir, script in scripts)
        ids = "".join(f"printf '%s_{i}\\n' \"$id\" > {q(posixpath.join(run_dir, 'job_id'))}\n"
                      for i, (run_dir, _) in enumerate(scripts))
        submit = f"""{_SBATCH_ON_PATH}
{writes}
mkdir -p {q(folder)} || exit 1
printf '%s' {q(array_script)} > {q(array)} || exit 1
id={_sbatch(shared, ' '.join(q(o) for o in options) + ' ' + q(array))} || exit 1
id=${{id%%;*}}
{ids}printf 'job %s\\n' "$id"
"""
        job = self._submitted(self.host.sh(submit, timeout=300, what="submitting the job array (sbatch)",
                                           login_umask=True))
        self._say_time_rounding(launches)
        now = time.time()
        return [Handle(run_dir, self.host.name, job=f"{job}_{i}", started_at=now)
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
        return run_dir, batch_script(run_dir, str(launch.snapshot_dir), argv, own, setup, launch.runtime_dir)

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
                self.notes.event(launch.run_id, "warning", rounded)

    def _submitted(self, output: bytes) -> str:
        text = output.decode(errors="replace")
        job = next((line.split()[1] for line in text.splitlines() if line.startswith("job ") and len(line.split()) > 1),
                   None)
        if not job or not JOB_ID.match(job):
            raise WorkbenchError(f"{self.host.name}: sbatch gave no job id ({text.strip()[:200]!r})")
        return job

    def status(self, handle: Handle) -> RunState:
        """The job's state (below; a full disk said as such), with what Slurm decided beside it reported for the
        run (RunNotes): the GPUs it gave the job, and a cancel that came from outside Workbench."""
        found = self.with_full_disk(self._status(handle), handle.run_dir)
        job, run_id = str(handle.job or ""), posixpath.basename(handle.run_dir.rstrip("/"))
        if found.state == "exited" and found.reason == ENDED["CANCELLED"] and job:
            self.queue.note_cancelled(run_id, job)
        if job and job not in self._gpus_noted and (found.state == "exited" or job in self._seen_started
                                                    or self.queue.jobs().get(job, {}).get("state") == "RUNNING"):
            started = _json(self.host.read_small(posixpath.join(handle.run_dir, "pid")) or b"")
            if started.get("job") == job:
                self._gpus_noted.add(job)
                self.queue.note_gpus(run_id, job, started)
        return found

    def _status(self, handle: Handle) -> RunState:
        job = str(handle.job or "")
        record = self.host.read_small(posixpath.join(handle.run_dir, "exit_code"))
        polled, jobs = self.queue.answer()
        info = jobs.get(job) if job else None
        state = (info or {}).get("state", "")
        if record is not None:
            written = _json(record)
            if written.get("never_started"):
                return RunState("exited", exit_code=None, reason="cancelled while Slurm held it (PENDING)",
                                started_at=handle.started_at, finished_at=written.get("finished_at"))
            ended = exited(written, handle.started_at)
            if state in ENDED and state != "COMPLETED":
                ended.reason = slurms_word(state, ended.reason)
            elif state in REQUEUED and (ended.reason or (polled or 0) > (ended.finished_at or float("inf"))):
                # the attempt was killed (or ended with a code the site requeues) and Slurm queued it again
                self.queue.note_requeued(posixpath.basename(handle.run_dir.rstrip("/")), job,
                                         (info or {}).get("reason") or "", ended.finished_at)
                return RunState("running", started_at=handle.started_at)
            elif ended.reason and job and state in STILL_HELD and self._may_say_more(ended.finished_at):
                # killed by a signal while Slurm still holds the job: its next look tells whether Slurm did it
                # (a time limit, scancel, a requeue) — waited for, not asked for, up to a few intervals
                return RunState("running", started_at=handle.started_at)
            elif ended.reason and job and not state and (found := self.queue.accounted(job)):
                ended.reason = slurms_word(found["state"], ended.reason)  # squeue forgot it: accounting says
            return ended
        if state in ENDED:
            # killed before it could write its record (SIGKILL after the time limit's grace): a moment more
            # for a record that is being written, then Slurm's word for it (its accounting's, where kept:
            # the signal or exit code)
            time.sleep(0.5)
            record = self.host.read_small(posixpath.join(handle.run_dir, "exit_code"))
            if record is not None:
                return self._status(handle)
            if state == "COMPLETED":  # the script exits with the experiment's code: 0
                return RunState("exited", exit_code=0, started_at=handle.started_at, finished_at=time.time())
            found = self.queue.accounted(job)
            if found is not None and found["state"] == state:
                return ended_by_accounting(found, handle.started_at)
            if found is not None:  # accounting not answering, or not there yet: looked at again next time
                return RunState("running", started_at=handle.started_at)
            return RunState("exited", exit_code=None, reason=ENDED[state], started_at=handle.started_at,
                            finished_at=time.time())
        if info is None and job:
            if all(self.host.read_small(posixpath.join(handle.run_dir, name)) is None for name in ("job_id", "pid")):
                return RunState("missing", reason="its job left no trace in its run dir")
            if polled is not None and polled > (handle.started_at or 0) + 2 * self.settings.poll:
                accounted = self.queue.accounted(job)
                if accounted is not None and accounted["state"] in ENDED:
                    return ended_by_accounting(accounted, handle.started_at)
                run_id = posixpath.basename(handle.run_dir.rstrip("/"))
                if accounted is not None and self.queue.unlisted_for(run_id, job) < RUNAWAY:
                    # accounting still calls it running (its end not recorded yet), or did not answer
                    return RunState("running", started_at=handle.started_at)
                said = (" and its accounting does not answer" if accounted is UNANSWERED else
                        f" and its accounting says {accounted['state']}" if accounted else "")
                return RunState("missing", reason=f"Slurm no longer knows job {job}{said}; it left no exit record")
        return RunState("running", started_at=handle.started_at)

    # a job Slurm holds has written nothing: its follower waits cheaply (a look at the shared squeue answer)
    # rather than reading its files over SFTP several times a second — a sweep's 100 pending array tasks
    # would otherwise keep the login node's sshd busy
    def held(self, handle: Handle) -> bool:
        """Slurm still holds the job (PENDING): it has written nothing, and needs no follower yet. A job this
        process saw start (its `pid` record) is not held, whatever the last squeue answer says."""
        job = str(handle.job or "")
        return job not in self._seen_started and self.queue.held(job, handle.started_at)

    def _wait_while_pending(self, handle: Handle, stop: threading.Event | None = None) -> None:
        """Waits while the job is held, looking at its run dir every few seconds: a cancel records its end
        there at once, and a job that started (before the next squeue says so) writes its `pid` record."""
        recheck = time.monotonic() + PENDING_LOOK
        while self.held(handle) and not (stop is not None and stop.is_set()):
            if time.monotonic() > recheck:
                if self.host.read_small(posixpath.join(handle.run_dir, "exit_code")) is not None:
                    return
                if self.host.read_small(posixpath.join(handle.run_dir, "pid")) is not None:
                    self._seen_started.add(str(handle.job or ""))
                    return
                # a job squeue has not listed yet was submitted a moment ago and may be starting: looked at
                # each second; one squeue says is PENDING may wait long: less often
                listed = str(handle.job or "") in self.queue.jobs()
                recheck = time.monotonic() + (PENDING_RECHECK if listed else PENDING_LOOK)
            if stop is not None:
                stop.wait(PENDING_LOOK)
            else:
                time.sleep(PENDING_LOOK)

    def read_logs(self, handle: Handle, offset: str, follow: bool) -> Iterator[Chunk]:
        if follow:
            self._wait_while_pending(handle)
        yield from super().read_logs(handle, offset, follow)

    def progress(self, handle: Handle, stop: threading.Event) -> Iterator[str]:
        self._wait_while_pending(handle, stop)
        yield from super().progress(handle, stop)

    def read_metrics(self, handle: Handle, offset: str, limit: int, final: bool) -> Chunk:
        if not final and self.held(handle):
            return Chunk(b"", offset)
        return super().read_metrics(handle, offset, limit, final)

    def _may_say_more(self, finished_at: float | None) -> bool:
        return finished_at is not None and time.time() - finished_at <= 3 * self.settings.poll + 5

    def cancel(self, handle: Handle) -> None:
        self.cancel_many([handle])

    def cancel_many(self, handles: list[Handle]) -> None:
        """One scancel for all of them (a sweep's array tasks). A job Slurm had not started yet never will:
        its end is recorded here, at once (the batch script writes `pid` when it starts, and records its own
        end once it has); the ones that were running are given a moment to record theirs."""
        handles = [h for h in handles if JOB_ID.match(str(h.job or ""))]
        if not handles:
            return
        never = "".join(f"""run={q(h.run_dir)}
if [ ! -e "$run/pid" ] && [ ! -e "$run/exit_code" ]; then
  printf '{{"exit_code": null, "never_started": true, "finished_at": %s}}\\n' "$(date +%s)" > "$run/exit_code"
fi
""" for h in handles)
        self.host.sh(f"scancel {' '.join(q(str(h.job)) for h in handles)} || exit 1\n{never}", timeout=120,
                     what="cancelling the job (scancel)")
        deadline = time.monotonic() + 15
        left = list(handles)
        while left and time.monotonic() < deadline:  # each batch script forwards the signal and records its end
            left = [h for h in left if self.host.read_small(posixpath.join(h.run_dir, "exit_code")) is None]
            if left:
                time.sleep(0.2)

    def adopt(self, run_id: str, run_dir: str) -> Handle | None:
        return self._adopt(run_id, run_dir, by_name=True)

    def adopt_from_run_dir(self, run_id: str, run_dir: str) -> Handle | None:
        """`adopt` for an array task (its job has its array's name: an squeue for it would find none)."""
        return self._adopt(run_id, run_dir, by_name=False)

    def _adopt(self, run_id: str, run_dir: str, by_name: bool) -> Handle | None:
        """The run's job: from the `job_id` its submit wrote, else (the submit died between sbatch and that
        write) the id the job wrote when it started, else (`by_name`) the job squeue lists under the run's
        name with this Workbench's comment (an array task has its array's name: not found that way)."""
        found = self.host.read_small(posixpath.join(str(run_dir), "job_id"))
        job = found.decode(errors="replace").strip() if found is not None else ""
        if not JOB_ID.match(job):
            if self.host.read_small(posixpath.join(str(run_dir), "job.sh")) is None:
                return None  # never got as far as sbatch
            started = _json(self.host.read_small(posixpath.join(str(run_dir), "pid")) or b"")
            job = str(started.get("job") or "") or (by_name and self._job_named(run_id)) or ""
        if not JOB_ID.match(job):
            return None
        return Handle(str(run_dir), self.host.name, job=job, started_at=time.time())

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
