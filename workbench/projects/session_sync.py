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
from dataclasses import dataclass
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
        return "; ".join(said) or "nothing changed"


def _names(items: list[str], limit: int = 3) -> str:
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def left_out(rel: str) -> bool:
    """Whether `rel` lies in one of LEFT_OUT_PARTS and so is never brought back."""
    return not LEFT_OUT_PARTS.isdisjoint(rel.split("/"))


def _check_inside(rel: str) -> None:
    path = PurePosixPath(rel)
    if "\0" in rel or str(path) != rel or path.is_absolute() or ".." in path.parts or not path.parts:
        raise WorkbenchError(f"the session names a file {rel!r} that is not a path inside its project folder; "
                             f"nothing was brought back")


def plan_and_apply(project: Path, started: dict[str, str], session_files: dict[str, str],
                   fetch: Callable[[str, Path], None], session_id: str) -> BroughtBack:
    """Brings the session's new and changed files into `project` (see the module's docstring).

    `started` maps each regular file's path (relative, `/`-separated) to its sha256 when the session started,
    `session_files` the same for the session's working copy now. A path with a part `.ipynb_checkpoints`,
    `__pycache__`, `.git`, `.home`, `.jupyter`, `.local`, `.cache` or `.ipython` (LEFT_OUT_PARTS) is ignored in
    both.
    `fetch(rel, dest)` copies the session's file `rel` to the local path `dest`. A path leaving the project is
    refused (WorkbenchError) before anything is written."""
    for rel in session_files:
        _check_inside(rel)
    started = {rel: sha for rel, sha in started.items() if not left_out(rel)}
    now = {rel: sha for rel, sha in session_files.items() if not left_out(rel)}
    changed = sorted(rel for rel, sha in now.items() if started.get(rel) != sha)
    copied: list[str] = []
    kept_both: list[tuple[str, str]] = []
    unchanged = len(now) - len(changed)
    with _ProjectFolder(project, session_id, fetch) as folder:
        for rel in changed:
            try:
                outcome, saved_as = folder.bring(rel, started.get(rel), now[rel])
            except OSError as err:
                raise WorkbenchError(f"could not bring {rel} back into {project}: "
                                     f"{err.strerror or err}") from None
            if outcome == "copied":
                copied.append(rel)
            elif outcome == "kept":
                kept_both.append((rel, saved_as))
            else:
                unchanged += 1
    deleted = sorted(rel for rel in started if rel not in now)
    return BroughtBack(copied, kept_both, deleted, unchanged)


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

    def bring(self, rel: str, was: str | None, now: str) -> tuple[str, str]:
        """("copied", rel), ("kept", saved_as) or ("unchanged", "") for one file the session added or changed."""
        *dirs, name = rel.split("/")
        dir_fd, dir_parts, rerouted = self._open_parent(dirs)
        try:
            if not rerouted:
                kind, local_sha, local_mode = _local_state(dir_fd, name)
                if local_sha == now:
                    return "unchanged", ""
                if kind == "missing" or (kind == "file" and local_sha == was):
                    with _Fetched(self, rel, now, dir_fd, dir_parts) as fetched:
                        tmp = fetched.name()
                        if local_mode is not None:
                            os.chmod(tmp, local_mode, dir_fd=dir_fd)
                        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                    return "copied", rel
            saved = self._keep_beside(rel, now, dir_fd, dir_parts, name, rerouted)
            return ("kept", saved) if saved else ("unchanged", "")
        finally:
            os.close(dir_fd)

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

    def _keep_beside(self, rel: str, now: str, dir_fd: int, dir_parts: list[str], name: str,
                     rerouted: bool) -> str | None:
        """Saves the session's file under the first free name beside the local one and returns that path; None
        where one of those names already holds the session's content (kept on an earlier call)."""
        stem, suffix = _split_suffix(name)
        kept_names = _numbered(f"{stem}.session-{self.session_id}", suffix)
        # A rerouted file goes under its own name first: the stand-in folder already says it is the session's.
        candidates = _chain([name], kept_names) if rerouted else kept_names
        with _Fetched(self, rel, now, dir_fd, dir_parts) as fetched:
            for candidate in candidates:
                kind, sha, _ = _local_state(dir_fd, candidate)
                if sha == now:
                    return None
                if kind != "missing":
                    continue
                try:
                    os.link(fetched.name(), candidate, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                except FileExistsError:
                    continue
                return "/".join([*dir_parts, candidate])
        raise AssertionError("unreachable")


class _Fetched:
    """A temporary file in the target folder holding the session's `rel`, fetched on the first call of `name`
    and checked against its sha256; removed on leaving unless it was renamed into place."""

    def __init__(self, folder: _ProjectFolder, rel: str, now: str, dir_fd: int, dir_parts: list[str]) -> None:
        self.folder, self.rel, self.now, self.dir_fd, self.dir_parts = folder, rel, now, dir_fd, dir_parts
        self._name: str | None = None

    def __enter__(self) -> _Fetched:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._name is not None:
            try:
                os.unlink(self._name, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass

    def name(self) -> str:
        if self._name is not None:
            return self._name
        name = f".wb-session-{secrets.token_hex(6)}.tmp"
        # Reserved under the umask's mode: a new file gets the mode any new file of the user's would.
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666, dir_fd=self.dir_fd))
        self._name = name
        self.folder.fetch(self.rel, Path(os.path.realpath(self.folder.project), *self.dir_parts, name))
        _, sha, _ = _local_state(self.dir_fd, name)
        if sha != self.now:
            raise WorkbenchError(f"{self.rel} arrived from the session with other content than it holds there "
                                 f"(sha256 {str(sha)[:12]}, not {self.now[:12]}); nothing was written for it")
        return name


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
