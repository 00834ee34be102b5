"""A launch says once, in one line, which files over 100 MiB go into the snapshot and how to leave them out
(`[project] exclude`); the line is a warning event of the run. A sweep says it once, not once per trial.
Real (sparse) files, real launches with the process executor."""

from __future__ import annotations

from pathlib import Path

from helpers import wait_for

SPEC = """
[project]
name = "big"
{exclude}
[experiments.train]
image = "busybox:latest"
command = ["sh", "-c", "echo ok"]

[experiments.grid]
image = "busybox:latest"
command = ["sh", "-c", "echo {{x}}"]
params = {{ x = 1 }}
[experiments.grid.sweep]
x = [1, 2, 3]
"""
MIB = 1 << 20


def sparse_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"data")
        fh.truncate(size)


def big_project(make_project, exclude: str = "") -> Path:
    root = make_project(SPEC.format(exclude=exclude))
    sparse_file(root / "data" / "big.bin", 300 * MIB)
    sparse_file(root / "ckpt.pt", 1536 * MIB)
    sparse_file(root / "small.bin", 100 * MIB)  # not over the limit
    return root


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if "over 100 MiB" in line]


def test_a_launch_names_the_big_files_once_and_how_to_leave_them_out(cli, make_project):
    root = big_project(make_project)
    done = cli("run", str(root), "-e", "train", "--executor", "process", "--wait", "--json")
    assert done.code == 0, done.err
    expected = (f"2 files over 100 MiB in the snapshot: ckpt.pt (1.5 GiB), data/big.bin (300 MiB); if runs do not "
                f"need them, leave them out with [project] exclude in {root / 'workbench.toml'}")
    assert warnings_in(done.err) == [f"warning: {expected}"], done.err
    events = cli("runs", "show", done.json()["id"], "--json").json()["events"]
    assert [e["message"] for e in events if e["kind"] == "warning"] == [expected]


def test_files_left_out_with_exclude_are_not_said(cli, make_project):
    root = big_project(make_project, exclude='exclude = ["data/**", "*.pt"]')
    done = cli("run", str(root), "-e", "train", "--executor", "process", "--wait", "--json")
    assert done.code == 0, done.err
    assert warnings_in(done.err) == []
    events = cli("runs", "show", done.json()["id"], "--json").json()["events"]
    assert not [e for e in events if "over 100 MiB" in e["message"]]


def test_one_big_file_is_said_in_the_singular(cli, make_project):
    root = big_project(make_project, exclude='exclude = ["data/**"]')
    done = cli("run", str(root), "-e", "train", "--executor", "process", "--wait", "--json")
    assert done.code == 0, done.err
    assert warnings_in(done.err) == [f"warning: 1 file over 100 MiB in the snapshot: ckpt.pt (1.5 GiB); if runs do "
                                     f"not need it, leave it out with [project] exclude in {root / 'workbench.toml'}"]


def test_a_sweep_says_it_once_not_once_per_trial(cli, make_project):
    root = big_project(make_project)
    started = cli("sweep", str(root), "-e", "grid", "--executor", "process", "--json")
    assert started.code == 0, started.err
    assert len(warnings_in(started.err)) == 1, started.err
    sweep_id = started.json()["id"]
    wait_for(lambda: cli("sweeps", "show", sweep_id, "--json").json()["status"] != "running", timeout=120,
             interval=0.5)
