"""Snapshots never follow a link out of the project, keep in-project links as links, keep the user's modes
without widening them, say what they left out, and share a lock with gc. Real files, links, modes, processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from workbench.errors import WorkbenchError
from workbench.projects import snapshot as snapshot_module
from workbench.projects.snapshot import left_out_summary, remove_unreferenced, snapshot_lock, take_snapshot

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- not-really-a-key\n"


def project(tmp_path: Path, name: str = "proj", files: dict[str, str] | None = None) -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "train.py").write_text("print('hi')\n")
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def stored_bytes(store: Path) -> list[bytes]:
    """Every regular file's bytes anywhere in the store (objects and snapshots), links not followed."""
    out = []
    for dirpath, _, filenames in os.walk(store):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink() and path.is_file():
                out.append(path.read_bytes())
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_links_to_files_outside_are_left_out_and_reported(tmp_path):
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_bytes(SECRET)
    key.chmod(0o600)
    root = project(tmp_path)
    (root / "key").symlink_to(key)
    (root / "env.txt").symlink_to("/proc/self/environ")
    (root / "rel_key").symlink_to(os.path.relpath(key, root))
    (root / "gone").symlink_to(tmp_path / "nowhere")  # dangling, outside
    store = tmp_path / "store"

    snap = take_snapshot(root, [], store)

    for name in ("key", "env.txt", "rel_key", "gone"):
        assert not os.path.lexists(snap.path / name), name
    assert snap.left_out == [
        ("env.txt", "link to /proc/self/environ leaves the project"),
        ("gone", f"link to {tmp_path / 'nowhere'} leaves the project"),
        ("key", f"link to {key} leaves the project"),
        ("rel_key", f"link to {os.path.relpath(key, root)} leaves the project"),
    ]
    contents = stored_bytes(store)
    assert not any(SECRET in c for c in contents)
    assert Path("/proc/self/environ").read_bytes() not in contents
    assert (snap.path / "train.py").read_text() == "print('hi')\n" and snap.files == 1


def test_in_project_links_are_stored_as_links(tmp_path):
    root = project(tmp_path, files={"lib/util.py": "X = 1\n", "lib/deep/data.txt": "data\n"})
    (root / "alias.py").symlink_to("lib/util.py")
    (root / "pkg").symlink_to("lib", target_is_directory=True)
    (root / "lib" / "deep" / "up.py").symlink_to("../util.py")
    store = tmp_path / "store"

    snap = take_snapshot(root, [], store)

    assert snap.left_out == []
    assert (snap.path / "alias.py").is_symlink() and os.readlink(snap.path / "alias.py") == "lib/util.py"
    assert (snap.path / "alias.py").read_text() == "X = 1\n"
    assert (snap.path / "pkg").is_symlink() and os.readlink(snap.path / "pkg") == "lib"
    assert (snap.path / "pkg" / "deep" / "data.txt").read_text() == "data\n"
    assert os.readlink(snap.path / "lib" / "deep" / "up.py") == "../util.py"
    assert (snap.path / "lib" / "deep" / "up.py").read_text() == "X = 1\n"
    assert snap.files == 3  # train.py, lib/util.py, lib/deep/data.txt

    (root / "alias.py").unlink()
    (root / "alias.py").symlink_to("train.py")
    assert take_snapshot(root, [], store).hash != snap.hash  # links take part in the tree hash


def test_absolute_in_project_link_is_stored_relative(tmp_path):
    root = project(tmp_path, files={"configs/base.yaml": "lr: 1\n"})
    via = tmp_path / "via"  # the project reached through a link to its folder
    via.symlink_to(root, target_is_directory=True)
    (root / "configs" / "run.yaml").symlink_to(root / "configs" / "base.yaml")
    (root / "cfg").symlink_to(via / "configs", target_is_directory=True)

    snap = take_snapshot(via, [], tmp_path / "store")

    assert snap.left_out == []
    assert os.readlink(snap.path / "configs" / "run.yaml") == "base.yaml"
    assert (snap.path / "configs" / "run.yaml").read_text() == "lr: 1\n"
    assert os.readlink(snap.path / "cfg") == "configs"
    assert (snap.path / "cfg" / "base.yaml").read_text() == "lr: 1\n"


def test_directory_links_leaving_the_project_are_reported(tmp_path):
    outside = tmp_path / "home" / ".ssh"
    outside.mkdir(parents=True)
    (outside / "id_ed25519").write_bytes(SECRET)
    root = project(tmp_path)
    (root / "ssh").symlink_to(outside, target_is_directory=True)
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    (root / ".venv").symlink_to("/usr", target_is_directory=True)  # always ignored: not worth a report
    store = tmp_path / "store"

    snap = take_snapshot(root, [], store)

    assert snap.left_out == [("etc", "directory link to /etc leaves the project"),
                             ("ssh", f"directory link to {outside} leaves the project")]
    assert sorted(p.name for p in snap.path.iterdir()) == ["train.py"]
    assert not any(SECRET in c for c in stored_bytes(store))


def test_link_loop_is_reported(tmp_path):
    root = project(tmp_path)
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")

    snap = take_snapshot(root, [], tmp_path / "store")

    assert snap.left_out == [("a", "link to b is a loop"), ("b", "link to a is a loop")]


def test_modes_are_kept_without_widening(tmp_path):
    root = project(tmp_path, files={"secret.txt": "token\n", "run.sh": "#!/bin/sh\n", "private/notes.txt": "n\n"})
    (root / "secret.txt").chmod(0o600)
    (root / "run.sh").chmod(0o755)
    (root / "train.py").chmod(0o644)
    (root / "private" / "notes.txt").chmod(0o640)
    (root / "private").chmod(0o700)
    root.chmod(0o750)
    store = tmp_path / "store"

    snap = take_snapshot(root, [], store)

    assert mode(snap.path / "secret.txt") == 0o400
    assert mode(snap.path / "run.sh") == 0o555
    assert mode(snap.path / "train.py") == 0o444
    assert mode(snap.path / "private" / "notes.txt") == 0o440
    assert mode(snap.path / "private") == 0o500
    assert mode(snap.path) == 0o550

    # The same bytes with a wider mode in another project: a separate object, and the first stays 0400.
    other = project(tmp_path, "other", files={"secret.txt": "token\n"})
    (other / "secret.txt").chmod(0o644)
    snap2 = take_snapshot(other, [], store)
    first, second = (snap.path / "secret.txt").stat(), (snap2.path / "secret.txt").stat()
    assert first.st_ino != second.st_ino
    assert mode(snap.path / "secret.txt") == 0o400 and mode(snap2.path / "secret.txt") == 0o444
    assert (snap2.path / "secret.txt").read_text() == "token\n"


def test_tree_hash_changes_when_only_a_mode_changes(tmp_path):
    root = project(tmp_path, files={"data/config.json": "{}"})
    store = tmp_path / "store"
    (root / "train.py").chmod(0o644)
    first = take_snapshot(root, [], store)
    (root / "train.py").chmod(0o600)
    second = take_snapshot(root, [], store)
    (root / "data").chmod(0o700)
    third = take_snapshot(root, [], store)

    assert len({first.hash, second.hash, third.hash}) == 3
    assert mode(first.path / "train.py") == 0o444 and mode(second.path / "train.py") == 0o400
    assert mode(third.path / "data") == 0o500


def test_fifo_is_reported_not_read(tmp_path):
    root = project(tmp_path)
    os.mkfifo(root / "pipe")

    snap = take_snapshot(root, [], tmp_path / "store")  # would hang if the fifo were opened for reading

    assert snap.left_out == [("pipe", "fifo")]
    assert not os.path.lexists(snap.path / "pipe")


def test_file_swapped_for_a_link_while_walking_is_not_followed(tmp_path, monkeypatch):
    key = tmp_path / "id_ed25519"
    key.write_bytes(SECRET)
    root = project(tmp_path, files={"weights.txt": "w\n"})
    real_stat = os.stat

    def stat_then_swap(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if path == "weights.txt" and kwargs.get("dir_fd") is not None:
            (root / "weights.txt").unlink()
            (root / "weights.txt").symlink_to(key)  # between the walk's stat and its open
        return result

    monkeypatch.setattr(snapshot_module.os, "stat", stat_then_swap)
    snap = take_snapshot(root, [], tmp_path / "store")
    monkeypatch.undo()

    assert snap.left_out == [("weights.txt", "changed while it was read")]
    assert not any(SECRET in c for c in stored_bytes(tmp_path / "store"))


def test_left_out_summary_is_one_line():
    entries = [("a", "fifo"), ("b", "link to /etc leaves the project"), ("c", "socket"), ("d", "fifo")]
    assert left_out_summary(entries[:1]) == "left out 1 entry: a (fifo)"
    assert left_out_summary(entries, limit=2) == \
        "left out 4 entries: a (fifo), b (link to /etc leaves the project), and 2 more"
    assert left_out_summary(entries[:3]) == "left out 3 entries: a (fifo), b (link to /etc leaves the project), c (socket)"


def test_gc_removes_staging_dirs_left_by_killed_launches(tmp_path):
    store = tmp_path / "store"
    keep = take_snapshot(project(tmp_path, "a", files={"k.txt": "keep\n"}), [], store)
    drop = take_snapshot(project(tmp_path, "b", files={"d.txt": "drop\n"}), [], store)
    leftover = store / ".tmp-killed"
    (leftover / "sub").mkdir(parents=True)
    (leftover / "sub" / "f").write_text("half a snapshot")
    (leftover / "sub").chmod(0o500)
    leftover.chmod(0o500)
    with snapshot_lock(store, exclusive=True):
        removed, freed = remove_unreferenced(store, {keep.hash})

    assert removed == 1 and freed == len("drop\n")
    assert not leftover.exists() and not drop.path.exists()
    assert (keep.path / "k.txt").read_text() == "keep\n" and (keep.path / "train.py").exists()
    assert sorted(p.name for p in store.iterdir()) == [".lock", keep.hash, "objects"]


HOLDER = """
import sys
from pathlib import Path
from workbench.projects.snapshot import snapshot_lock
with snapshot_lock(Path(sys.argv[1]), exclusive=sys.argv[2] == "exclusive"):
    print("held", flush=True)
    sys.stdin.read()
"""


def hold_lock(store: Path, how: str) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(store), how], cwd=REPO, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout.readline() == "held\n"
    return child


def release(child: subprocess.Popen) -> None:
    child.stdin.close()
    assert child.wait(timeout=30) == 0


def test_shared_lock_in_another_process_blocks_gc_until_released(tmp_path):
    store = tmp_path / "store"
    launch = hold_lock(store, "shared")
    try:
        with pytest.raises(WorkbenchError, match="is busy"):
            with snapshot_lock(store, exclusive=True, timeout=0.3):
                pass
        with snapshot_lock(store, exclusive=False, timeout=0.3):  # two launches do not wait for each other
            pass
    finally:
        release(launch)
    with snapshot_lock(store, exclusive=True, timeout=5):
        pass
    assert mode(store / ".lock") == 0o600


def test_gc_holding_the_lock_blocks_a_launch_until_released(tmp_path):
    store = tmp_path / "store"
    gc = hold_lock(store, "exclusive")
    try:
        with pytest.raises(WorkbenchError, match="is busy"):
            with snapshot_lock(store, exclusive=False, timeout=0.3):
                pass
    finally:
        release(gc)
    with snapshot_lock(store, exclusive=False, timeout=5):
        pass
