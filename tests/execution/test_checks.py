"""Metric checks recorded per run with a verdict: last and best values, a missing metric, shown everywhere."""

from __future__ import annotations

import json

SCRIPT = ("echo '{\"step\": 0, \"acc\": 0.5, \"loss\": 0.4}' >> $WORKBENCH_METRICS; "
          "echo '{\"step\": 1, \"acc\": 0.95, \"loss\": 0.7}' >> $WORKBENCH_METRICS")


def project(make_project, checks: str):
    return make_project('[experiments.t]\nimage = "busybox:latest"\ncommand = ' + json.dumps(["sh", "-c", SCRIPT])
                        + "\n[experiments.t.checks]\n" + checks)


def test_checks_pass_and_fail_with_last_and_best(cli, make_project):
    root = project(make_project, 'acc = ">= 0.9"\nloss = "best < 0.5"\n')
    passed = cli("run", str(root), "--executor", "process", "--wait", "--json")
    assert passed.code == 0, passed.err
    assert passed.json()["verdict"] == "pass"
    shown = cli("runs", "show", passed.json()["id"], "--json").json()
    assert shown["checks"] == [{"metric": "acc", "expression": "acc >= 0.9", "value": 0.95, "passed": True},
                               {"metric": "loss", "expression": "loss best < 0.5", "value": 0.4, "passed": True}]
    failing = project(make_project, 'loss = "< 0.5"\nf1 = ">= 0.5"\n')  # last loss 0.7; no f1 at all
    failed = cli("run", str(failing), "--executor", "process", "--wait", "--json").json()
    assert failed["status"] == "succeeded" and failed["verdict"] == "fail"
    text = cli("runs", "show", failed["id"]).out
    assert "checks: FAIL" in text and "FAIL  f1 >= 0.5" in text and "value=missing" in text
    listed = {r["id"]: r["verdict"] for r in cli("runs", "list", "--json").json()}
    assert listed == {passed.json()["id"]: "pass", failed["id"]: "fail"}


def test_malformed_check_is_a_clear_spec_error(cli, make_project):
    from helpers import assert_one_line_error

    root = project(make_project, 'acc = "> = 0.9"\n')
    assert_one_line_error(cli("run", str(root)), "experiments.t.checks.acc", "is not of the form")
