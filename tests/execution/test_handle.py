"""A run's handle is kept as a JSON record (`runs.handle`): read back from what any version stored, and written
as exactly the keys it had before (none left None)."""

from __future__ import annotations

import json

from workbench.execution.base import Handle


def test_a_record_of_each_backend_round_trips_unchanged():
    records = [
        {"container": "c0ffee", "run_dir": "/r/1", "machine": "local"},
        {"run_dir": "/r/2", "machine": "local", "shim": 10, "shim_start": "5", "pid": 11, "started_at": 1.5,
         "proc_start": "6"},
        {"run_dir": "/h/3", "machine": "gpu1", "shim": 10, "shim_start": "5", "pid": 11, "proc_start": "6",
         "started_at": 2.0},
        {"run_dir": "/shared/4", "machine": "hpc", "job": "7_3", "started_at": 3.0},
    ]
    for record in records:
        stored = json.loads(json.dumps(Handle.from_record(record).to_record()))
        assert stored == record


def test_keys_this_version_does_not_know_are_left_out_and_an_old_record_is_this_workstations():
    handle = Handle.from_record({"run_dir": "/r/5", "container": "c", "engine": "podman"})
    assert handle == Handle("/r/5", "local", container="c")
    assert handle.to_record() == {"run_dir": "/r/5", "machine": "local", "container": "c"}
