"""A run that `workbench watch` cancels because a change restarts it is recorded as superseded by the run
that replaced it, with no verdict: the checks of a run that did not succeed are not evaluated."""

from __future__ import annotations

import pytest

from test_watch_command import QUICK, SPEC, Watch  # tests/services is on sys.path (rootdir-relative imports)

# Writes a metric that passes the check at once, then waits; exits promptly on SIGTERM (sh as PID 1).
PASSING_THEN_LONG = "trap 'exit 143' TERM\necho '{\"acc\": 0.99}' >> $WORKBENCH_METRICS\nsleep 60 & wait\n"


@pytest.mark.usefixtures("docker_client")
def test_a_run_restarted_by_a_change_is_superseded_without_a_verdict(cli, make_project, home):
    root = make_project(SPEC.replace("{on_busy}", "restart"), {"run.sh": "sleep 60\n"})
    watch = Watch(root, home)
    try:
        watch.expect("watching")
        (root / "run.sh").write_text(PASSING_THEN_LONG)
        watch.expect("change: run.sh")
        first = watch.expect("started").split()[1]
        (root / "run.sh").write_text(PASSING_THEN_LONG + "# edited\n")
        assert f"cancelling run {first}" in watch.expect("restarting", timeout=30)
        second = watch.expect("started").split()[1]
        (root / "run.sh").write_text(QUICK)  # and once more: the second run is superseded by a third
        assert f"cancelling run {second}" in watch.expect("restarting", timeout=30)
        third = watch.expect("started").split()[1]
        assert "checks PASS" in watch.expect(f"run {third} succeeded")
    finally:
        assert watch.interrupt() == 0

    for old, new in ((first, second), (second, third)):
        run = cli("runs", "show", old, "--json").json()
        assert run["status"] == "cancelled", run
        assert run["status_reason"] == f"superseded by run {new}", run
        assert run["verdict"] is None and run["checks"] == [], run  # acc=0.99 was written: not a pass
        assert run["metrics"]["acc"]["last"] == 0.99  # its metrics are kept all the same
        assert any(e["kind"] == "superseded" for e in run["events"]), run["events"]
    listed = {r["id"]: (r["status"], r["verdict"]) for r in cli("runs", "list", "--json").json()}
    assert listed == {first: ("cancelled", None), second: ("cancelled", None), third: ("succeeded", "pass")}


@pytest.mark.usefixtures("docker_client")
def test_a_cancelled_run_gets_no_verdict(cli, make_project):
    """Outside watch too: `runs cancel` records `cancelled by the user` and leaves the checks unevaluated."""
    import json
    import time

    from helpers import wait_for

    root = make_project(SPEC.replace("{on_busy}", "restart"), {"run.sh": PASSING_THEN_LONG})
    started = cli("run", str(root), "--json")
    assert started.code == 0, started.err
    run_id = started.json()["id"]

    def metric_seen():
        shown = cli("runs", "show", run_id, "--json").json()
        return "acc" in shown["metrics"]
    wait_for(metric_seen, timeout=60, interval=0.5)
    cancelled = cli("runs", "cancel", run_id, "--json")
    assert cancelled.code == 0, cancelled.err
    deadline = time.monotonic() + 60
    while (run := cli("runs", "show", run_id, "--json").json())["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert run["status"] == "cancelled" and run["status_reason"] == "cancelled by the user", json.dumps(run)
    assert run["verdict"] is None and run["checks"] == []
