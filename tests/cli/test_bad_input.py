"""Every user-caused error: one clear line on stderr, exit 1 (2 for command-line syntax), no traceback,
and nothing already recorded is lost."""

from __future__ import annotations

import os

import pytest

from helpers import SAMPLES, assert_one_line_error

GOOD = '[project]\nname = "p"\n[experiments.t]\nimage = "busybox:latest"\ncommand = ["echo", "{lr}"]\nparams = { lr = 0.1 }\n'


@pytest.fixture
def recorded(cli):
    """A run recorded before the bad input, which must survive it."""
    result = cli("run", str(SAMPLES / "hello-shell"), "--executor", "process", "--wait", "--json")
    assert result.code == 0, result.err
    return result.json()["id"]


@pytest.mark.parametrize("spec, needles", [
    (None, ("workbench.toml: not found",)),
    ('[project\nname = "x"\n', ("TOML syntax error", "line 1")),
    (GOOD + "colour = 1\n", ("workbench.toml:7:", "experiments.t.colour: unknown key")),
    (GOOD.replace("0.1 }", "0.1 }\ngpus = -1"), ("workbench.toml:7:", "experiments.t.gpus")),
])
def test_bad_specs(cli, make_project, tmp_path, recorded, spec, needles):
    root = make_project(spec) if spec is not None else tmp_path / "empty"
    root.mkdir(exist_ok=True)
    assert_one_line_error(cli("run", str(root)), *needles)
    assert cli("runs", "show", recorded, "--json").json()["status"] == "succeeded"


@pytest.mark.parametrize("args, needles", [
    (("-e", "nope"), ("no experiment 'nope'; it declares: t",)),
    (("-p", "momentum=0.9"), ("declares no param 'momentum'", "lr (float)")),
    (("-p", "lr=fast"), ("-p lr='fast': expected a number",)),
    (("--machine", "gpu-box"), ("no machine 'gpu-box'",)),
])
def test_bad_run_arguments(cli, make_project, recorded, args, needles):
    root = make_project(GOOD)
    assert_one_line_error(cli("run", str(root), *args), *needles)
    runs = cli("runs", "list", "--json").json()
    assert [r["id"] for r in runs] == [recorded]  # nothing half-recorded


def test_unknown_run_and_ambiguity(cli, recorded):
    assert_one_line_error(cli("runs", "show", "zzzz"), "no run 'zzzz'")
    assert_one_line_error(cli("runs", "logs", "zzzz"), "no run 'zzzz'")
    again = cli("runs", "cancel", recorded)  # an ended run is left as it is: not an error (issue 8)
    assert again.code == 0 and "already succeeded; nothing to cancel" in again.err


def test_syntax_errors_exit_2(cli):
    for args in (("run",), ("runs",), ("run", ".", "--bogus"), ("runs", "list", "--status", "weird")):
        result = cli(*args)
        assert result.code == 2, (args, result.err)
        assert "Traceback" not in result.err


def test_corrupt_database_is_one_line(cli, home):
    (home / "workbench.db").write_bytes(b"this is not sqlite" * 100)
    assert_one_line_error(cli("runs", "list"), "not a usable Workbench database")


def test_projects_add_list_remove(cli, make_project, tmp_path):
    root = make_project(GOOD)
    assert cli("projects", "add", str(root)).code == 0
    listed = cli("projects", "list", "--json").json()
    assert listed == [{"name": "p", "path": str(root), "added_at": listed[0]["added_at"], "experiments": ["t"],
                       "error": None, "cost": None}]  # no run on a machine with a rate yet
    (root / "workbench.toml").write_text("[project\n")
    broken = cli("projects", "list", "--json").json()[0]
    assert "TOML syntax error" in broken["error"]  # shown, never a crash
    assert_one_line_error(cli("projects", "add", str(tmp_path / "absent")), "no such folder")
    assert cli("projects", "remove", "p").code == 0
    assert cli("projects", "list", "--json").json() == []
    assert_one_line_error(cli("projects", "remove", "p"), "no registered project 'p'")


def test_doctor_reports_each_check(cli):
    result = cli("doctor", "--json")
    checks = {c["check"]: c for c in result.json()}
    assert {"data dir", "disk space", "database", "docker engine", "nvml"} <= set(checks)
    assert checks["data dir"]["status"] == "ok"
    has_driver = os.path.exists("/proc/driver/nvidia")  # a GPU machine: NVML answers; elsewhere it is said
    assert checks["nvml"]["status"] == ("ok" if has_driver else "warn"), checks["nvml"]
    down = cli("doctor", "--json", env={"DOCKER_HOST": "unix:///nonexistent.sock"}).json()
    engine = next(c for c in down if c["check"] == "docker engine")
    assert engine["status"] == "fail" and "start Docker" in engine["fix"]


def test_non_finite_params_keep_json_strict(cli, make_project):
    root = make_project('[experiments.t]\nimage = "busybox:latest"\ncommand = ["echo", "{lr}"]\nparams = { lr = 0.1 }\n')
    result = cli("run", str(root), "-p", "lr=nan", "--executor", "process", "--wait")
    assert result.code == 0, result.err
    import json
    listed = json.loads(cli("runs", "list", "--json").out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert listed[0]["params"] == {"lr": "NaN"}


@pytest.mark.parametrize("args, needles", [
    (("x", "--ssh", "h:0"), ("--ssh 'h:0': port 0 is outside 1-65535",)),
    (("x", "--ssh", "root@h:70000"), ("port 70000 is outside 1-65535",)),
    (("x", "--ssh", "[::1:22"), ("'[' without its ']'",)),
    (("x", "--ssh", "::1]:22"), ("']' without its '['",)),
    (("x", "--ssh", "[host]:22"), ("brackets are for IPv6 addresses",)),
    (("x", "--ssh", "h:22:23"), ("one port at most",)),
    (("x", "--ssh", "h:\u0663"), ("the port must be a number",)),  # an Arabic-Indic 3: int() would take it
    (("x", "--ssh", "h:\u00b2"), ("the port must be a number",)),  # a superscript 2: int() would raise
    (("x", "--ssh", "@h"), ("the user before '@' is empty",)),
    (("x", "--ssh", " @h"), ("the user before '@' is empty",)),
    (("x", "--ssh", "a b@h"), ("the user before '@' is empty or has spaces",)),
    (("x", "--ssh", "root@bad host"), ("'bad host' is neither a host name nor an IP address",)),
    (("x", "--ssh", "300.1.1.1"), ("'300.1.1.1' is neither a host name nor an IP address",)),
    (("x", "--ssh=-oProxyCommand=x"), ("neither a host name nor an IP address",)),
    (("x", "--ssh", "h", "--jump", "j:0"), ("--jump 'j:0': port 0",)),
    (("x", "--ssh", "h", "--jump", "@j"), ("--jump '@j': the user",)),
    (("x", "--slurm", "login:99999"), ("--slurm 'login:99999': port 99999",)),
    (("a" * 65, "--ssh", "h"), ("at most 64 letters",)),
    (("auto", "--ssh", "h"), ("machine name 'auto' is reserved",)),
    (("AUTO", "--ssh", "h"), ("is reserved",)),
    (("local", "--ssh", "h"), ("machine name 'local' is reserved",)),
])
def test_bad_machine_addresses_record_nothing(cli, args, needles):
    assert_one_line_error(cli("machines", "add", *args), *needles)
    assert [m["name"] for m in cli("machines", "list", "--json").json()] == ["local"]


def test_good_addresses_still_parse(cli):
    """IPv6 in brackets with a port, a bare IPv6 address, 64-character names, ports at both ends of the range
    (nothing listens there: the host is recorded as unreachable)."""
    for name, address in (("v6", "root@[::1]:1"), ("v6bare", "::1"), ("a" * 64, "root@127.0.0.1:65535"),
                          ("low", "root@127.0.0.1:1")):
        added = cli("machines", "add", name, "--ssh", address, "--json")
        assert added.code == 0 and added.json()["state"] == "unreachable", added.err
    assert len(cli("machines", "list", "--json").json()) == 5


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("priority", ["9223372036854775808", "-9223372036854775809", str(10**30)])
def test_priority_beyond_sqlite_integers(cli, make_project, command, priority):
    root = make_project(GOOD + "[experiments.t.sweep]\nlr = [0.1, 0.2]\n")
    assert_one_line_error(cli(command, str(root), "--priority", priority, "--executor", "process"),
                          f"--priority {priority}: give a whole number from -9223372036854775808")
    assert cli("runs", "list", "--json").json() == []
    assert cli("sweeps", "list", "--json").json() == []
