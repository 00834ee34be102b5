"""Real file-system events in temporary folders: what triggers, what does not, debouncing, polling."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from helpers import wait_for
from workbench.projects.watcher import FolderWatcher


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "train.py").write_text("v1")
    return tmp_path


def watch(folder, polling=False, **kwargs):
    seen: list[list[str]] = []
    watcher = FolderWatcher(folder, seen.append, paths=kwargs.pop("paths", ["*.py", "configs/**"]),
                            ignore=["data/**"], debounce=0.3, polling=polling, **kwargs).start()
    time.sleep(0.2 if not polling else 0.7)
    return watcher, seen


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_modify_atomic_rename_delete_and_new_directory(folder, polling):
    watcher, seen = watch(folder, polling)
    try:
        (folder / "train.py").write_text("v2")
        wait_for(lambda: seen == [["train.py"]], timeout=5)
        (folder / ".train.py.tmp").write_text("v3")  # an editor's atomic save
        os.replace(folder / ".train.py.tmp", folder / "train.py")
        wait_for(lambda: len(seen) == 2, timeout=5)
        assert seen[1] == ["train.py"]
        (folder / "train.py").unlink()
        wait_for(lambda: len(seen) == 3 and seen[2] == ["train.py"], timeout=5)
        (folder / "configs").mkdir()
        (folder / "configs" / "lr.yaml").write_text("lr: 0.1")
        wait_for(lambda: len(seen) == 4, timeout=5)
        assert seen[3] == ["configs/lr.yaml"]
        time.sleep(0.8)
        (folder / "configs" / "lr.yaml").write_text("lr: 0.2")  # a file in the new directory is watched too
        wait_for(lambda: len(seen) == 5, timeout=5)
    finally:
        watcher.stop()


def test_ignored_and_unwatched_paths_never_trigger(folder):
    watcher, seen = watch(folder)
    try:
        (folder / "data" / "big.py").write_text("x")     # ignored by the spec
        (folder / ".git" / "HEAD").write_text("x")      # always ignored
        (folder / "notes.md").write_text("x")           # not in `paths`
        (folder / "data" / "sub").mkdir()
        (folder / "data" / "sub" / "x.py").write_text("x")
        time.sleep(1.0)
        assert seen == []
        assert not any(str(folder / "data") in str(p) for p in watcher._dirs.values())  # never watched
    finally:
        watcher.stop()


def test_fifty_writes_in_a_second_are_one_trigger(folder):
    watcher, seen = watch(folder)
    try:
        for i in range(50):
            (folder / "train.py").write_text(str(i))
            time.sleep(0.018)
        wait_for(lambda: seen, timeout=5)
        time.sleep(0.8)
        assert seen == [["train.py"]]
    finally:
        watcher.stop()


def test_threads_stay_bounded_however_many_directories(folder):
    for i in range(60):
        (folder / f"pkg{i}").mkdir()
    before = threading.active_count()
    watchers = [FolderWatcher(folder, lambda paths: None, paths=["*.py"]).start() for _ in range(3)]
    try:
        assert sum(len(w._dirs) for w in watchers) >= 3 * 61
        assert threading.active_count() - before <= 3 + 1  # a debounce thread each + one shared inotify reader
    finally:
        for w in watchers:
            w.stop()


def test_inotify_watch_limit_falls_back_to_polling(folder, monkeypatch):
    from watchdog.observers.inotify_c import InotifyFD

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(InotifyFD, "add_callback", full)
    notes: list[str] = []
    seen: list[list[str]] = []
    watcher = FolderWatcher(folder, seen.append, paths=["*.py"], debounce=0.3, on_status=notes.append).start()
    try:
        assert watcher.mode == "polling"
        assert "inotify watch limit is reached" in notes[0] and "polling" in notes[0]
        time.sleep(0.7)
        (folder / "train.py").write_text("changed")
        wait_for(lambda: seen == [["train.py"]], timeout=5)
    finally:
        watcher.stop()
