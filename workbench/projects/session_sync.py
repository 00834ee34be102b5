"""Bringing a JupyterLab session's files back into the project folder once its container has stopped.

The session worked on a writable copy of the project's snapshot; the snapshot's manifest says what every file
held when the session started. A file the session added or changed is written into the project unless the user
changed the local file too since then: the session's version is then saved beside it as
`NAME.session-<id><ext>`, so nothing is lost on either side. A file the session deleted is left alone locally.

Writes go through directory file descriptors opened without following links, so a link in the project (to
`~/.ssh`, `/etc`, another project) is never written through: a file behind one is kept beside it instead.
Running it again after it applied does nothing: what is already there with the session's content is counted
unchanged.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from workbench.errors import WorkbenchError
from workbench.projects import sparse

# Jupyter's and Python's own state, the session's home and tool caches: never project files.
LEFT_OUT_PARTS = frozenset({".ipynb_checkpoints", "__pycache__", ".git", ".home", ".jupyter", ".local", ".cache",
                            ".ipython"})

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a file swapped for a fifo must not hang the open.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_A_LINK_OR_NOT_A_DIR = (errno.ELOOP, errno.ENOTDIR)


@dataclass(frozen=True)
class BroughtBack:
    """What bringing a session's files back did."""
    copied: list[str]  # rel paths written into the project (new or changed in the session)
    kept_both: list[tuple[str, str]]  # (rel, saved_as rel) where the local file also changed
    deleted_in_session: list[str]  # rel paths present at start, gone from the session: left alone locally
    unchanged: int
    failed: list[tuple[str, str]] = field(default_factory=list)  # (rel, why): not brought back, tried again later
    unreadable: list[str] = field(default_factory=list)  # in the working copy, but its listing could not read them

    def summary(self) -> str:
        """One line: `brought back 3 files (train.ipynb, a.py, b.py); kept both: c.py (session copy:
        c.session-3fa1b2c4.py)`, or `nothing changed`."""
        said = []
        if self.copied:
            files = "1 file" if len(self.copied) == 1 else f"{len(self.copied)} files"
            said.append(f"brought back {files} ({_names(self.copied)})")
        if self.kept_both:
            said.append("kept both: " + _names([f"{rel} (session copy: {saved})" for rel, saved in self.kept_both]))
        if self.deleted_in_session:
            said.append(f"deleted in the session, left here: {_names(self.deleted_in_session)}")
        if self.unreadable:
            said.append(f"could not be read in the session's copy: {_names(self.unreadable)}")
        return "; ".join(said) or "nothing changed"

    def failures(self) -> str:
        """`a.py (Permission denied), b.py (...)`: the files not brought back, or "" when none."""
        return _names([f"{rel} ({why})" for rel, why in self.failed])


def _names(items: list[str], limit: int = 3) -> str:
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def left_out(rel: str) -> bool:
    """Whether `rel` lies in one of LEFT_OUT_PARTS and so is never brought back."""
    return not LEFT_OUT_PARTS.isdisjoint(rel.split("/"))


def _inside(rel: str) -> bool:
    path = PurePosixPath(rel)
    return not ("\0" in rel or str(path) != rel or path.is_absolute() or ".." in path.parts or not path.parts)


def plan_and_apply(project: Path, started: dict[str, str], session_files: dict[str, str],
                   fetch: Callable[[str, Path], None], session_id: str, *, executable: frozenset[str] = frozenset(),
                   unreadable: list[str] | None = None) -> BroughtBack:
    """Brings the session's new and changed files into `project` (see the module's docstring).

    `started` maps each regular file's path (relative, `/`-separated) to its sha256 when the session started,
    `session_files` the same for the session's working copy now. A path with a part `.ipynb_checkpoints`,
    `__pycache__`, `.git`, `.home`, `.jupyter`, `.local`, `.cache` or `.ipython` (LEFT_OUT_PARTS) is ignored in
    both. `executable`: the paths known to be executable in the session (a file new here gets the mode a new
    file of the user's would, +x kept for these). `unreadable`: paths (files or folders) the working copy's
    listing could not read: what lies there is neither brought back nor said deleted.
    `fetch(rel, dest)` copies the session's file `rel` to the local path `dest`. Each file is brought back on
    its own: one that fails (a path leaving the project, a write refused) is named in `failed`, the others
    are written all the same; bringing them back again later skips what already arrived."""
    unreadable = sorted(rel for rel in (unreadable or []) if not left_out(rel))
    started = {rel: sha for rel, sha in started.items() if not left_out(rel)}
    now = {rel: sha for rel, sha in session_files.items() if not left_out(rel)}
    changed = sorted(rel for rel, sha in now.items() if started.get(rel) != sha)
    copied: list[str] = []
    kept_both: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    unchanged = len(now) - len(changed)
    with _ProjectFolder(project, session_id, fetch) as folder:
        for rel in changed:
            if not _inside(rel):
                failed.append((rel, "not a path inside the project folder"))
                continue
            try:
                outcome, saved_as = folder.bring(rel, started.get(rel), now[rel], rel in executable)
            except OSError as err:
                failed.append((rel, str(err.strerror or err)))
                continue
            except WorkbenchError as err:
                failed.append((rel, err.message))
                continue
            if outcome == "copied":
                copied.append(rel)
            elif outcome == "kept":
                kept_both.append((rel, saved_as))
            else:
                unchanged += 1
    deleted = sorted(rel for rel in started if rel not in now and not _under_any(rel, unreadable))
    return BroughtBack(copied, kept_both, deleted, unchanged, failed, unreadable)


def _under_any(rel: str, paths: list[str]) -> bool:
    return any(p in (".", rel) or rel.startswith(p + "/") for p in paths)


class _ProjectFolder:
    """The project folder, written into only through descriptors of directories reached without a link."""

    def __init__(self, project: Path, session_id: str, fetch: Callable[[str, Path], None]) -> None:
        self.project = project
        self.session_id = session_id
        self.fetch = fetch

    def __enter__(self) -> _ProjectFolder:
        try:
            # The project folder itself may be reached through a link (~/proj -> /data/proj): only what is
            # inside it is opened without following one.
            self.root_fd = os.open(self.project, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise WorkbenchError(f"cannot open the project folder {self.project} to bring the session's files "
                                 f"back: {err.strerror or err}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.root_fd)

    def bring(self, rel: str, was: str | None, now: str, executable: bool) -> tuple[str, str]:
        """("copied", rel), ("kept", saved_as) or ("unchanged", "") for one file the session added or changed."""
        *dirs, name = rel.split("/")
        dir_fd, dir_parts, rerouted = self._open_parent(dirs)
        try:
            with _Fetched(self, rel, now, dir_fd, dir_parts, executable) as fetched:
                if not rerouted:
                    seen = _identity(dir_fd, name)  # before the hash: a save after it shows as another identity
                    kind, local_sha, local_mode = _local_state(dir_fd, name)
                    if local_sha == now:
                        return "unchanged", ""
                    if kind == "missing" or (kind == "file" and local_sha == was):
                        if self._put_in_place(fetched, name, seen, local_mode):
                            return "copied", rel
                        # saved locally while it was fetched: that save is kept, the session's copy beside it
                saved = self._keep_beside(fetched, name, rerouted)
                return ("kept", saved) if saved else ("unchanged", "")
        finally:
            os.close(dir_fd)

    @staticmethod
    def _put_in_place(fetched: _Fetched, name: str, seen: tuple[int, ...] | None, local_mode: int | None) -> bool:
        """Puts the fetched file at `name` unless the local file changed since `seen` (its identity before it
        was hashed): the fetch may take long, and a save meanwhile must not be overwritten."""
        tmp, dir_fd = fetched.name(local_mode), fetched.dir_fd
        if seen is None:  # no local file: linked in, so one saved meanwhile is never replaced
            try:
                os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                return True
            except FileExistsError:
                return False
        if _identity(dir_fd, name) != seen:
            return False
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        fetched.placed()
        return True

    def _open_parent(self, dirs: list[str]) -> tuple[int, list[str], bool]:
        """A descriptor of the folder `dirs` names, made where missing; where one of them is locally a link
        or not a folder, a folder `NAME.session-<id>` beside it stands in (rerouted = True)."""
        fd, parts, rerouted = os.dup(self.root_fd), [], False
        try:
            for part in dirs:
                try:
                    child = _open_or_make_dir(fd, part)
                except OSError as err:
                    if err.errno not in _A_LINK_OR_NOT_A_DIR:
                        raise
                    part, child = self._stand_in_dir(fd, part)
                    rerouted = True
                os.close(fd)
                fd = child
                parts.append(part)
        except BaseException:
            os.close(fd)
            raise
        return fd, parts, rerouted

    def _stand_in_dir(self, parent_fd: int, name: str) -> tuple[str, int]:
        for candidate in _numbered(f"{name}.session-{self.session_id}", ""):
            try:
                return candidate, _open_or_make_dir(parent_fd, candidate)
            except OSError as err:
                if err.errno not in _A_LINK_OR_NOT_A_DIR:
                    raise
        raise AssertionError("unreachable")

    def _keep_beside(self, fetched: _Fetched, name: str, rerouted: bool) -> str | None:
        """Saves the session's file under the first free name beside the local one and returns that path; None
        where one of those names already holds the session's content (kept on an earlier call)."""
        stem, suffix = _split_suffix(name)
        kept_names = _numbered(f"{stem}.session-{self.session_id}", suffix)
        # A rerouted file goes under its own name first: the stand-in folder already says it is the session's.
        candidates = _chain([name], kept_names) if rerouted else kept_names
        for candidate in candidates:
            kind, sha, _ = _local_state(fetched.dir_fd, candidate)
            if sha == fetched.now:
                return None
            if kind != "missing":
                continue
            try:
                os.link(fetched.name(None), candidate, src_dir_fd=fetched.dir_fd, dst_dir_fd=fetched.dir_fd,
                        follow_symlinks=False)
            except FileExistsError:
                continue
            return "/".join([*fetched.dir_parts, candidate])
        raise AssertionError("unreachable")


class _Fetched:
    """A temporary file in the target folder holding the session's `rel`, fetched on the first call of `name`
    and checked against its sha256; removed on leaving (a file linked or renamed into place stays there)."""

    def __init__(self, folder: _ProjectFolder, rel: str, now: str, dir_fd: int, dir_parts: list[str],
                 executable: bool) -> None:
        self.folder, self.rel, self.now, self.dir_fd, self.dir_parts = folder, rel, now, dir_fd, dir_parts
        self.executable = executable
        self._name: str | None = None

    def __enter__(self) -> _Fetched:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._name is not None:
            try:
                os.unlink(self._name, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass

    def placed(self) -> None:
        """Renamed into place: nothing left to remove."""
        self._name = None

    def name(self, local_mode: int | None) -> str:
        """The fetched file's name in the folder: with `local_mode`, the mode of the local file it replaces;
        else that of a new file of the user's (+x where the session's file is executable). A fetch may create
        it anew (SSH writes through a private temporary file), so the mode is set after it."""
        if self._name is not None:
            return self._name
        name = f".wb-session-{secrets.token_hex(6)}.tmp"
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=self.dir_fd))
        self._name = name
        self.folder.fetch(self.rel, Path(os.path.realpath(self.folder.project), *self.dir_parts, name))
        kind, sha, _ = _local_state(self.dir_fd, name)
        if sha != self.now:
            raise WorkbenchError(f"it arrived from the session with other content than it holds there "
                                 f"(sha256 {str(sha)[:12]}, not {self.now[:12]})")
        if local_mode is None:
            local_mode = (0o777 if self.executable else 0o666) & ~_umask()
        os.chmod(name, local_mode, dir_fd=self.dir_fd)
        return name


def _umask() -> int:
    """This process's umask, read without setting it (os.umask would change it for every thread a moment)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _identity(dir_fd: int, name: str) -> tuple[int, ...] | None:
    """(inode, size, mtime_ns, ctime_ns) of `name` (a link not followed), None when it does not exist."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _chain(first: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from first
    yield from rest


def _numbered(stem: str, suffix: str) -> Iterator[str]:
    """`stem+suffix`, then `stem-2+suffix`, `stem-3+suffix`, ..."""
    yield f"{stem}{suffix}"
    n = 2
    while True:
        yield f"{stem}-{n}{suffix}"
        n += 1


def _split_suffix(name: str) -> tuple[str, str]:
    """("x.tar", ".gz") for x.tar.gz (the last suffix only), (".env", "") for a dot file."""
    path = PurePosixPath(name)
    return path.stem, path.suffix


def _open_or_make_dir(parent_fd: int, name: str) -> int:
    """A descriptor of the folder `name` in `parent_fd`, made if missing; ELOOP/ENOTDIR where it is a link or
    not a folder."""
    while True:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            try:
                os.mkdir(name, 0o777, dir_fd=parent_fd)
            except FileExistsError:
                pass


def _local_state(dir_fd: int, name: str) -> tuple[str, str | None, int | None]:
    """("missing" | "file" | "other", sha256 of a regular file, its permission bits), links not followed."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return "missing", None, None
    if not stat.S_ISREG(st.st_mode):
        return "other", None, None
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.ENOENT, *_A_LINK_OR_NOT_A_DIR, errno.ENXIO):
            return "other", None, None  # swapped while we looked
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "other", None, None
        return "file", sparse.hash_fd(fd, st.st_size), stat.S_IMODE(st.st_mode)
    finally:
        os.close(fd)
