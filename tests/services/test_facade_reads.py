"""The facade's reads for the front ends (issue 23): what the CLI and the app once read from the store, an
execution or projects module, or a run's folder themselves, each answered by one `Workbench` method."""

from __future__ import annotations

import json

import pytest

from workbench.errors import NotFound, WorkbenchError
from workbench.services import Workbench
from workbench.services.spec_text import check_texts, param_problem, param_text

NOW = 1_795_000_000.0


@pytest.fixture
def wb(home):
    workbench = Workbench()
    yield workbench
    workbench.close()


def add_run(wb: Workbench, run_id: str, **fields) -> None:
    wb._services.store.insert_run({"id": run_id, "project": "demo", "project_path": "/projects/demo", "experiment": "train",
                         "status": "succeeded", "machine": "local", "executor": "process", "created_at": NOW,
                         "started_at": NOW, "finished_at": NOW + 1800, "params": {"lr": 0.1},
                         "argv": ["python", "train.py"], **fields})


def test_runs_and_runs_json_list_newest_first_with_the_filters(wb):
    add_run(wb, "aaaa0001")
    add_run(wb, "aaaa0002", experiment="eval", created_at=NOW + 60)
    add_run(wb, "bbbb0001", status="failed", created_at=NOW + 120)
    assert [r.id for r in wb.runs(limit=None)] == ["bbbb0001", "aaaa0002", "aaaa0001"]
    assert [r.id for r in wb.runs(limit=None, status="succeeded", experiment="train")] == ["aaaa0001"]
    assert [r.id for r in wb.runs(limit=1, project="demo")] == ["bbbb0001"]
    assert [r["id"] for r in json.loads(wb.runs_json(limit=2))] == ["bbbb0001", "aaaa0002"]
    assert [r["id"] for r in json.loads(wb.runs_json(limit=None, status="failed"))] == ["bbbb0001"]


def test_run_resolves_a_ref_as_every_command_does(wb):
    add_run(wb, "aaaa0001")
    add_run(wb, "aaaa0002")
    assert wb.run("aaaa0001").experiment == "train"
    assert wb.run(" aaaa0002").id == "aaaa0002"
    with pytest.raises(WorkbenchError, match="ambiguous"):
        wb.run("aaaa")
    with pytest.raises(NotFound):
        wb.run("cccc")


def test_run_cost_and_out_dir(wb):
    add_run(wb, "priced01", hourly_cost=2.0, gpu_share=0.5)  # half the machine for half an hour
    add_run(wb, "free0001")
    assert wb.run_cost(wb.run("priced01"), NOW + 10_000) == pytest.approx(0.5)
    assert wb.run_cost(wb.run("free0001"), NOW) is None
    assert wb.run_out_dir("price") == wb.dirs.runs / "priced01" / "out"


def test_run_image_size_from_the_records_alone(wb):
    image = "sha256:" + "ab" * 32
    add_run(wb, "built001", image_id=image)
    wb._services.store.add_event("built001", "image", f"workbench/demo:0123456789abcdef {image}: 1234567 bytes (1.2 MiB)")
    add_run(wb, "rerun001", image_id=image)  # a rerun reuses its original's image without an event of its own
    add_run(wb, "noimage1")
    assert wb.show("rerun001").image_size == 1234567
    assert wb.show("noimage1").image_size is None


def test_run_log_tail_reads_on_from_the_last_offset(wb):
    add_run(wb, "logged01")
    log = wb.dirs.run_dir("logged01") / "logs.txt"
    log.parent.mkdir(parents=True)
    assert wb.run_log_tail("logged01", 0).lines == []  # no log yet
    log.write_text("2026-01-01T00:00:00Z out one\n2026-01-01T00:00:01Z err two\n2026-01-01T00:00:02Z out thr")
    first = wb.run_log_tail("logged01", 0)
    assert first.lines == ["one", "two"] and first.skipped_bytes == 0  # the unfinished line waits
    with open(log, "a") as fh:
        fh.write("ee\n")
    assert wb.run_log_tail("logged01", first.offset).lines == ["three"]
    assert wb.run_log_tail("logged01", 0, max_lines=1).lines == ["three"]


def test_read_spec_reads_the_folder_now(wb, make_project):
    root = make_project('[project]\nname = "demo"\n[experiments.train]\nimage = "python:3.11-slim"\n'
                        'command = ["python", "train.py"]\nparams = { lr = 0.1 }\n')
    assert wb.read_spec(str(root)).experiment("train").params == {"lr": 0.1}
    (root / "workbench.toml").write_text("[project\n")
    with pytest.raises(WorkbenchError):
        wb.read_spec(str(root))


def test_host_key_is_asked_of_ssh_hosts_only(wb):
    with pytest.raises(NotFound):
        wb.host_key("nosuch")
    with pytest.raises(WorkbenchError, match="this workstation"):
        wb.host_key("local")


def test_spec_values_as_the_launch_form_and_the_detail_show_them():
    assert [param_text(v) for v in (True, 3, 0.5, "x")] == ["true", "3", "0.5", "x"]
    assert param_problem("epochs", 5, "5") is None
    assert param_problem("epochs", 5, "five") == "epochs: expected an integer, like the default 5"
    assert param_problem("shuffle", True, "maybe") == "shuffle: expected true or false"
    declared = [{"metric": "acc", "op": ">=", "threshold": 0.9}, {"metric": "loss", "op": "<", "threshold": 0.5,
                                                                   "on": "best"}, {"old": "form"}]
    assert check_texts(declared, []) == ["acc >= 0.9", "loss best < 0.5", "form"]
    assert check_texts([], ["acc >= 0.8"]) == ["acc >= 0.8"]
