"""How a job's end is read from Slurm's accounting (sacct), for a job squeue has forgotten. The lines are what
the test cluster's sacct (slurmdbd 22.05, SLURM_TIME_FORMAT=%s) printed for: an array task that exited 3, a
job cancelled by root, a pending job, a job whose batch shell was killed with SIGKILL, a time limit, and a
pending array range."""

from __future__ import annotations

from workbench.execution.slurm_executor import ENDED, ended_by_accounting, parse_sacct, slurms_word

SACCT_OUT = """5_0|FAILED|3:0|1795928426
6|CANCELLED by 0|0:0|1795928427
7|PENDING|0:0|Unknown
14|FAILED|0:9|1795929001
3|TIMEOUT|0:0|1795928490
9_[2-9]|PENDING|0:0|Unknown
8|COMPLETED|0:0|1795928430
"""


def test_sacct_lines_are_read_by_job_id_and_a_pending_range_is_not_a_job():
    jobs = parse_sacct(SACCT_OUT)
    assert set(jobs) == {"5_0", "6", "7", "14", "3", "8"}
    assert jobs["5_0"] == {"state": "FAILED", "exit_code": 3, "signal": 0, "finished_at": 1795928426.0}
    assert jobs["6"]["state"] == "CANCELLED"
    assert jobs["7"]["finished_at"] is None
    assert jobs["14"]["signal"] == 9


def test_an_end_from_accounting_says_what_slurm_recorded():
    jobs = parse_sacct(SACCT_OUT)
    killed = ended_by_accounting(jobs["14"], 100.0)
    assert killed.exit_code is None and killed.reason.startswith("killed by signal 9 (SIGKILL)")
    assert "Slurm FAILED" in killed.reason and killed.finished_at == 1795929001.0
    failed = ended_by_accounting(jobs["5_0"], None)
    assert failed.exit_code == 3 and failed.reason.startswith("exit code 3")
    assert ended_by_accounting(jobs["3"], None).reason == ENDED["TIMEOUT"]
    assert ended_by_accounting(jobs["6"], None).reason == ENDED["CANCELLED"]
    done = ended_by_accounting(jobs["8"], 5.0)
    assert done.exit_code == 0 and done.reason is None and done.started_at == 5.0


def test_slurms_word_replaces_a_signal_only_where_it_says_why():
    assert slurms_word("TIMEOUT", "killed by signal 15 (SIGTERM)") == ENDED["TIMEOUT"]
    assert slurms_word("FAILED", "killed by signal 9 (SIGKILL)") == "killed by signal 9 (SIGKILL)"
    assert slurms_word("COMPLETED", None) is None
