"""What a Slurm cluster's jobs are doing: one `squeue` per poll interval per cluster, shared by every Workbench
process through the database (SlurmQueue, reporting through RunNotes: the backend never writes records), and
how a job that squeue no longer lists ended, from Slurm's accounting (`sacct`, one call for all such jobs)."""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.execution.backends import PENDING_PREFIX
from workbench.execution.base import RunNotes, RunState, signal_reason

if TYPE_CHECKING:
    from workbench.execution.hosts import SshHost

MEMO_SECONDS = 1.0
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
SACCT = ["env", "SLURM_TIME_FORMAT=%s", "sacct", "--noheader", "--parsable2", "--allocations",
         "--format=JobID,State,ExitCode,End,JobName"]
SACCT_TIMEOUT = 20.0
NO_ACCOUNTING_RETRY = 600.0  # a cluster without accounting is not asked again for this long (per process)
UNANSWERED = {"state": "UNANSWERED"}  # sacct failed this time (slurmdbd restarting): asked again next interval
RUNAWAY = 600.0  # a job squeue no longer lists that accounting still calls running ends `lost` after this
_RANGE = re.compile(r"^(\d+)_\[([\d,\-]+)(%\d+)?\]$")  # array tasks never started: "7_[2-5,9%2]"
JOB_ID = re.compile(r"^\d+(_\d+)?$")


class SlurmQueue:
    """What the cluster's jobs are doing, from one `squeue` per poll interval shared through the database:
    a process whose copy is older than the interval takes the poll lease, calls squeue once for all of
    this user's jobs, and stores the answer; every other look reads it."""

    def __init__(self, host: "SshHost", notes: RunNotes, interval: float) -> None:
        self.host, self.notes, self.interval = host, notes, interval
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
        found = self.notes.last_poll(self.machine)
        if found is not None and time.time() - found[0] < self.interval:
            return found
        owner = self.notes.take_poll_lease(self.machine, POLL_LEASE_TTL)
        if owner is None:
            return found if found else (None, {})  # another process is asking now
        try:
            found = self.notes.last_poll(self.machine)  # asked by another process while we took the lease?
            if found is not None and time.time() - found[0] < self.interval:
                return found
            asked = time.time()
            jobs = self._squeue()
            self.notes.save_poll(self.machine, jobs, asked)
            self._note_pending(jobs)
            return asked, jobs
        finally:
            self.notes.release_poll_lease(self.machine, owner)

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
                wanted_ids = sorted(j for j in {job, *names} if JOB_ID.match(j)
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
        seen = [e["ts"] for e in self.notes.events(run_id, "unlisted")]
        if not seen:
            self.notes.event(run_id, "unlisted", f"Slurm's squeue no longer lists job {job}")
            return 0.0
        return time.time() - seen[0]

    def note_requeued(self, run_id: str, job: str, reason: str, attempt_ended: float | None) -> None:
        """The requeue as an event of the run (once per attempt, whichever process sees it first)."""
        mark = f"attempt ended {int(attempt_ended or 0)}"
        if any(mark in e["message"] for e in self.notes.events(run_id, "requeued")):
            return
        self.notes.event(run_id, "requeued", f"Slurm requeued job {job} ({reason or 'requeued'}; {mark}): "
                                             "the same run goes on when it starts again")

    def note_cancelled(self, run_id: str, job: str) -> None:
        """A job cancelled in Slurm that Workbench did not cancel (`scancel` by the user, an admin): the run
        is a cancelled one, not a failure; Slurm's word is an event of it."""
        run = self.notes.run(run_id)
        if run is not None and run["status"] in ("queued", "running") and not run.get("cancel_requested"):
            self.notes.event(run_id, "cancelled", f"Slurm cancelled job {job} (CANCELLED), not Workbench: "
                                                  "scancel, or the cluster's administrators")
            self.notes.set_cancel_requested(run_id)

    def note_gpus(self, run_id: str, job: str, started: dict[str, Any]) -> None:
        """The GPUs Slurm gave the job (the indices its batch script found in SLURM_JOB_GPUS when it started),
        recorded with the run as `<node>:gpu<index>` (Slurm picks them: nothing was reserved here)."""
        indices = [i for i in str(started.get("gpus") or "").split(",") if i.strip().isdigit()]
        if not indices:
            return
        node = str(started.get("node") or "?")
        given = [f"{node}:gpu{i.strip()}" for i in indices]
        run = self.notes.run(run_id)
        if run is not None and run.get("gpu_uuids") != given:  # none: the run was deleted since
            self.notes.set_gpus(run_id, given)
            self.notes.event(run_id, "gpus", f"Slurm gave job {job} {len(given)} GPU(s) on {node}: index "
                                             f"{', '.join(i.strip() for i in indices)} (CUDA_VISIBLE_DEVICES)")

    def _active_jobs(self) -> dict[str, str]:
        """job id -> run id, for this cluster's queued and running runs."""
        return self.notes.active_jobs(self.machine)

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
            if len(parts) == 5 and JOB_ID.match(parts[0]):
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
                run = self.notes.run(run_id)
            except Exception:  # noqa: BLE001 - a busy database: this run's note waits for the next answer
                continue
            if run is None or run["status"] != "running":  # a job of another Workbench, or a run deleted since
                continue
            reason = run.get("status_reason") or ""
            if info["state"] == "PENDING":
                why = info["reason"] if info["reason"] not in ("", "None") else "not yet looked at by the scheduler"
                wanted = f"{PENDING_PREFIX} ({why})"
                if reason != wanted:
                    self.notes.set_status_reason(run_id, wanted)
                    self.notes.event(run_id, "pending", f"Slurm holds it: {why}")
            elif reason.startswith(PENDING_PREFIX):
                self.notes.set_status_reason(run_id, None)
                if info["state"] == "RUNNING":
                    self.notes.event(run_id, "running", "Slurm started it")


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
        if JOB_ID.match(parts[0]):
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
