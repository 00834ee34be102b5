"""How a job's end is read from Slurm's accounting (sacct), for a job squeue has forgotten. The lines have the
form the test cluster's sacct (slurmdbd 22.05, SLURM_TIME_FORMAT=%s, --parsable2) prints: an array task that
exited 3, a job cancelled by root, a pending job, a job whose batch shell was killed with SIGKILL, one whose
script exited 137 after its child was killed, a time limit, a range of array tasks cancelled before they
started, a completed job, and a job of someone else's (not named wb-...). The end-to-end path, against the
real cluster and its slurmdbd, is test_slurm.py beside this file; here the decisions around a failing sacct,
with the login node's answers played back (the messages are sacct's own)."""

from __future__ import annotations

import time

import pytest

from workbench.execution.backends.slurm_queue import (ENDED, UNANSWERED, SlurmQueue, ended_by_accounting, parse_sacct,
                                                      slurms_word)
from workbench.services.run_notes import StoreRunNotes
from workbench.store import open_store

SACCT_OUT = """5_0|FAILED|3:0|1795928426|wb-array-5d2640be
6|CANCELLED by 0|0:0|1795928427|wb-3c8f8c6f
7|PENDING|0:0|Unknown|wb-4a73e1cf
14|FAILED|0:9|1795929001|wb-1c04021e
15|FAILED|137:0|1795929002|wb-04d59cf2
3|TIMEOUT|0:0|1795928490|wb-3cc3161b
9_[2-4,7]|CANCELLED by 0|0:0|1795928500|wb-array-d262ea57
8|COMPLETED|0:0|1795928430|wb-9f9674ab
11|COMPLETED|0:0|1795928431|train.sh
"""
DISABLED = b"Slurm accounting storage is disabled\n"


def test_sacct_lines_are_read_by_job_id_for_workbench_jobs_and_a_range_stands_for_its_tasks():
    jobs = parse_sacct(SACCT_OUT)
    assert set(jobs) == {"5_0", "6", "7", "14", "15", "3", "8", "9_2", "9_3", "9_4", "9_7"}  # not 11: not ours
    assert jobs["5_0"] == {"state": "FAILED", "exit_code": 3, "signal": 0, "finished_at": 1795928426.0,
                           "name": "wb-array-5d2640be"}
    assert jobs["6"]["state"] == "CANCELLED" and jobs["9_3"]["state"] == "CANCELLED"
    assert jobs["7"]["finished_at"] is None
    assert jobs["14"]["signal"] == 9


def test_an_end_from_accounting_says_what_slurm_recorded():
    jobs = parse_sacct(SACCT_OUT)
    killed = ended_by_accounting(jobs["14"], 100.0)
    assert killed.exit_code is None and killed.reason.startswith("killed by signal 9 (SIGKILL)")
    assert "Slurm FAILED" in killed.reason and killed.finished_at == 1795929001.0
    assert ended_by_accounting(jobs["15"], None).reason.startswith("killed by signal 9 (SIGKILL)")
    failed = ended_by_accounting(jobs["5_0"], None)
    assert failed.exit_code == 3 and failed.reason.startswith("exit code 3")
    assert ended_by_accounting(jobs["3"], None).reason == ENDED["TIMEOUT"]
    assert ended_by_accounting(jobs["6"], None).reason == ENDED["CANCELLED"]
    done = ended_by_accounting(jobs["8"], 5.0)
    assert done.exit_code == 0 and done.reason is None and done.started_at == 5.0
    # FAILED with nothing to say is no success
    odd = ended_by_accounting({"state": "FAILED", "exit_code": 0, "signal": 0, "finished_at": None}, None)
    assert odd.exit_code is None and "FAILED" in odd.reason


def test_slurms_word_replaces_a_signal_only_where_it_says_why():
    assert slurms_word("TIMEOUT", "killed by signal 15 (SIGTERM)") == ENDED["TIMEOUT"]
    assert slurms_word("FAILED", "killed by signal 9 (SIGKILL)") == "killed by signal 9 (SIGKILL)"
    assert slurms_word("COMPLETED", None) is None


class LoginNode:
    """Plays back what the login node answered, one (status, stdout, stderr) or exception per call."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []

    def run(self, argv, timeout=30.0, stdin=None):
        self.calls.append(argv)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


class Host:
    name = "hpc"

    def __init__(self, connection):
        self.connection = connection


@pytest.fixture
def store(tmp_path):
    opened = open_store(tmp_path / "workbench.db")
    yield opened
    opened.close()


def _queue(store, *answers) -> tuple[SlurmQueue, LoginNode]:
    node = LoginNode(*answers)
    queue = SlurmQueue(Host(node), StoreRunNotes(store), interval=30.0)
    store.save_slurm_poll("hpc", {}, time.time())  # squeue's last answer: it lists none of them
    return queue, node


def test_a_cluster_without_accounting_is_not_asked_again_for_a_while(store):
    queue, node = _queue(store, (1, b"", DISABLED))
    assert queue.accounted("14") is None
    assert queue.accounted("15") is None and len(node.calls) == 1


def test_a_failing_sacct_is_not_an_answer_and_is_asked_again_after_an_interval(store):
    queue, node = _queue(store, OSError("connection reset"), (1, b"", b"sacct: error: slurmdbd: Connection refused\n"),
                         (0, SACCT_OUT.encode(), b""))
    assert queue.accounted("14") is UNANSWERED
    assert queue.accounted("14") is UNANSWERED and len(node.calls) == 1  # not again within the interval
    queue._accounted.clear()
    assert queue.accounted("14") is UNANSWERED  # slurmdbd down is not "no accounting"
    queue._accounted.clear()
    assert queue.accounted("14")["signal"] == 9
    assert queue.accounted("14")["signal"] == 9 and len(node.calls) == 3  # an end is kept


def test_one_sacct_call_asks_for_every_job_of_the_cluster_squeue_no_longer_lists(store):
    queue, node = _queue(store, (0, SACCT_OUT.encode(), b""))
    for job, run_id in (("14", "1c04021e"), ("3", "3cc3161b"), ("8", "0badc0de")):  # job 8: a recycled id
        store.insert_run({"id": run_id, "project": "p", "project_path": "/p", "experiment": "e",
                          "status": "running", "machine": "hpc", "executor": "slurm", "created_at": 0,
                          "handle": {"job": job, "run_dir": f"/shared/runs/{run_id}"}})
    assert queue.accounted("14")["state"] == "FAILED"
    assert queue.accounted("3")["state"] == "TIMEOUT" and len(node.calls) == 1
    assert queue.accounted("8") is None  # sacct's job 8 is named for another run: not this run's end
    asked = node.calls[0][-1]
    assert asked.startswith("--jobs=") and set(asked[len("--jobs="):].split(",")) == {"14", "3", "8"}


def test_a_failing_sacct_is_remembered_for_every_job_it_was_asked_about(store):
    queue, node = _queue(store, (1, b"", b"sacct: error: slurmdbd: Connection refused\n"))
    for job, run_id in (("14", "1c04021e"), ("3", "3cc3161b")):
        store.insert_run({"id": run_id, "project": "p", "project_path": "/p", "experiment": "e",
                          "status": "running", "machine": "hpc", "executor": "slurm", "created_at": 0,
                          "handle": {"job": job, "run_dir": f"/shared/runs/{run_id}"}})
    assert queue.accounted("14") is UNANSWERED and queue.accounted("3") is UNANSWERED
    assert len(node.calls) == 1  # not one call (and one timeout) per run


def test_the_time_a_job_went_unlisted_is_shared_by_every_process_that_looks(store):
    store.insert_run({"id": "1c04021e", "project": "p", "project_path": "/p", "experiment": "e",
                      "status": "running", "machine": "hpc", "executor": "slurm", "created_at": 0})
    first, _ = _queue(store)
    assert first.unlisted_for("1c04021e", "14") == 0.0
    time.sleep(0.05)
    later, _ = _queue(store)  # another process, later
    assert 0.05 <= later.unlisted_for("1c04021e", "14") < 5
    assert [e["kind"] for e in store.events("1c04021e")].count("unlisted") == 1
