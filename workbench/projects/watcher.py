"""Folder watching for re-runs on change.

Only directories that are not ignored are watched (never one recursive watch over data dirs), through
watchdog's shared inotify reader: one thread for every watch of every project. New directories are picked
up; editors' atomic saves (write a temp file, rename it over the target) arrive as a move onto the target.
Bursts are debounced on the trailing edge by one small thread per watched project. When the inotify watch
limit is reached the watcher falls back to polling, and says so."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from typing import Callable

from workbench.projects.patterns import compile_patterns, is_always_ignored

DEBOUNCE_SECONDS = 0.4
POLL_SECONDS = 0.5
MASK = 0x2 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800  # modify, close_write, moves, create, deletes
IN_ISDIR = 0x40000000
IN_CREATE, IN_MOVED_TO = 0x100, 0x80
ChangeHandler = Callable[[list[str]], None]


class FolderWatcher:
    def __init__(self, root: Path, on_change: ChangeHandler, *, paths: list[str] | None = None,
                 ignore: list[str] | None = None, debounce: float = DEBOUNCE_SECONDS, polling: bool = False,
                 on_status: Callable[[str], None] | None = None) -> None:
        self.root = Path(root).resolve()
        self.on_change = on_change
        self.wanted = compile_patterns(paths or []) if paths else (lambda rel: True)
        self.ignored = compile_patterns(ignore or [])
        self.debounce = debounce
        self.mode = "polling" if polling else "inotify"
        self.on_status = on_status or (lambda message: None)
        self._dirs: dict[int, Path] = {}
        self._pending: set[str] = set()
        self._deadline: float | None = None
        self._cond = threading.Condition()
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._inotify = None

    # filtering ------------------------------------------------------------------------------------
    def _relative(self, path: Path) -> str | None:
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            return None
        return None if rel == "." or is_always_ignored(rel) or self.ignored(rel) else rel

    def _dir_ignored(self, path: Path) -> bool:
        rel = path.relative_to(self.root).as_posix() if path != self.root else ""
        return bool(rel) and (is_always_ignored(rel) or self.ignored(rel) or self.ignored(rel + "/"))

    # lifecycle ------------------------------------------------------------------------------------
    def start(self) -> "FolderWatcher":
        if self.mode == "inotify":
            try:
                self._watch_tree(self.root)
            except OSError as exc:
                self._fall_back(exc)
        if self.mode == "polling":
            self._start_thread(self._poll, "watch-poll")
        self._start_thread(self._debounce_loop, "watch-debounce")
        return self

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"{name}-{self.root.name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._unwatch_all()
        for thread in self._threads:
            thread.join(timeout=2)

    # inotify --------------------------------------------------------------------------------------
    def _watch_tree(self, top: Path) -> None:
        from watchdog.observers.inotify_c import InotifyFD

        self._inotify = InotifyFD.get_instance()
        for dirpath, dirnames, _ in os.walk(top):
            current = Path(dirpath)
            dirnames[:] = [d for d in dirnames if not self._dir_ignored(current / d)]
            wd = self._inotify.add_callback(os.fsencode(current), MASK, self, id(self))
            self._dirs[wd] = current

    def _unwatch_all(self) -> None:
        if self._inotify is not None and self._dirs:
            self._inotify.remove_callbacks([(wd, id(self)) for wd in list(self._dirs)])
            self._dirs.clear()

    def _fall_back(self, exc: OSError) -> None:
        self._unwatch_all()
        self.mode = "polling"
        reason = "the inotify watch limit is reached" if exc.errno == errno.ENOSPC else f"inotify failed: {exc}"
        self.on_status(f"{self.root}: {reason}; watching by polling every {POLL_SECONDS}s instead "
                       "(raise fs.inotify.max_user_watches to avoid this)")

    # watchdog's WatchCallback protocol (called on the shared inotify thread) -------------------------
    def on_event(self, event: object) -> None:
        directory = self._dirs.get(event.wd)  # type: ignore[attr-defined]
        if directory is None:
            return
        path = directory / os.fsdecode(event.name)  # type: ignore[attr-defined]
        mask = event.mask  # type: ignore[attr-defined]
        if mask & IN_ISDIR:
            if mask & (IN_CREATE | IN_MOVED_TO) and not self._dir_ignored(path):
                try:
                    self._watch_tree(path)  # a new directory: watch it, and count what it already holds
                except OSError as exc:
                    self._fall_back(exc)
                    self._start_thread(self._poll, "watch-poll")
                for dirpath, _, filenames in os.walk(path):
                    for name in filenames:
                        self._touch(Path(dirpath) / name)
            return
        self._touch(path)

    def on_watch_deleted(self, wd: int) -> None:
        self._dirs.pop(wd, None)

    def on_queue_overflow(self) -> None:
        self._touch(self.root / "*")  # events were lost: treat it as a change

    # polling --------------------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, tuple[int, int]]:
        seen = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            current = Path(dirpath)
            dirnames[:] = [d for d in dirnames if not self._dir_ignored(current / d)]
            for name in filenames:
                try:
                    st = (current / name).stat()
                except OSError:
                    continue
                seen[str(current / name)] = (st.st_mtime_ns, st.st_size)
        return seen

    def _poll(self) -> None:
        before = self._snapshot()
        while True:
            with self._cond:
                if self._stopped:
                    return
                self._cond.wait(POLL_SECONDS)
                if self._stopped:
                    return
            after = self._snapshot()
            for path in set(before) ^ set(after) | {p for p in before.keys() & after.keys() if before[p] != after[p]}:
                self._touch(Path(path))
            before = after

    # debounce -------------------------------------------------------------------------------------
    def _touch(self, path: Path) -> None:
        rel = self._relative(path) if path.name != "*" else "*"
        if rel is None or (rel != "*" and not self.wanted(rel)):
            return
        with self._cond:
            self._pending.add(rel)
            self._deadline = time.monotonic() + self.debounce  # trailing edge: each change pushes it back
            self._cond.notify_all()

    def _debounce_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (self._deadline is None or time.monotonic() < self._deadline):
                    self._cond.wait(None if self._deadline is None else max(0.0, self._deadline - time.monotonic()))
                if self._stopped:
                    return
                changed, self._pending, self._deadline = sorted(self._pending), set(), None
            self.on_change(changed)
