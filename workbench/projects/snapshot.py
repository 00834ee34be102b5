"""Content-addressed snapshots of a project folder.

Each file's bytes are stored once under `snapshots/objects/` (named by sha256 and the file's mode); a snapshot
is a directory `snapshots/<tree-hash>/` of hard links to those objects. The same content gives the same tree
hash, so a hundred runs of an unchanged project share one snapshot, and a small edit shares every unchanged
file.

Each snapshot's manifest (its entries: kind, mode, sha256 or link target, relative path; exactly the bytes its
tree hash is taken over) is kept in `snapshots/objects/manifests/<tree-hash>`, so a snapshot can be sent to
another host without walking it again (`snapshot_manifest`). It lives under `objects/` so the snapshot store
still holds only `objects/` and snapshots; gc removes a manifest with its snapshot.

A snapshot never follows a link: a link that stays inside the project is kept as a link, and one that leaves
it (to `~/.ssh/id_ed25519`, `/proc/self/environ`, `/etc`), a fifo, a socket or a device is left out and
reported in `Snapshot.left_out`. Stored files and directories keep the user's permission bits minus the write
bits, so nothing private becomes readable by others.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

from workbench.errors import WorkbenchError
from workbench.projects import sparse
from workbench.projects.patterns import ALWAYS_IGNORED, compile_patterns

# O_NONBLOCK: a file swapped for a fifo while we walk must not hang the open.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CHANGED = "changed while it was read"


@dataclass(frozen=True)
class Snapshot:
    hash: str
    path: Path
    files: int
    bytes: int
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason), sorted
    large: list[tuple[str, int]] = field(default_factory=list)  # (relative path, bytes) of files over LARGE_FILE


class _Entry(NamedTuple):
    kind: str  # "d" directory, "f" file, "l" link
    rel: str   # POSIX path relative to the project root; "" for the root
    mode: int  # permission bits as stored (write bits removed); 0 for links
    data: str  # sha256 of a file, target of a link, "" for a directory

    @property
    def object_name(self) -> str:
        """A file's object, relative to `snapshots/objects/`: `<2 hex>/<sha256>-<mode octal>`."""
        return f"{self.data[:2]}/{self.data}-{self.mode:03o}"


Entry = _Entry  # one line of a snapshot's manifest
MANIFESTS = "manifests"  # under objects/: never a two-hex object folder
LARGE_FILE = 100 << 20  # a file over this size (its logical size) in a project is said at launch


def _size_said(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size:,} bytes"


def large_files_summary(large: list[tuple[str, int]], spec_path: Path, limit: int = 5) -> str:
    """One line: `2 files over 100 MiB in the snapshot: data/big.bin (1 GiB), ckpt.pt (300.5 MiB); if runs do
    not need them, leave them out with [project] exclude in /p/workbench.toml`."""
    biggest = sorted(large, key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{rel} ({_size_said(size)})" for rel, size in biggest[:limit])
    more = f", and {len(large) - limit} more" if len(large) > limit else ""
    files = "1 file" if len(large) == 1 else f"{len(large)} files"
    return (f"{files} over {_size_said(LARGE_FILE)} in the snapshot: {shown}{more}; if runs do not need "
            f"{'it' if len(large) == 1 else 'them'}, leave {'it' if len(large) == 1 else 'them'} out with "
            f"[project] exclude in {spec_path}")


def left_out_summary(left_out: list[tuple[str, str]], limit: int = 3) -> str:
    """One line: `left out 2 entries: env.txt (link to /proc/self/environ leaves the project), pipe (fifo)`."""
    n = len(left_out)
    shown = ", ".join(f"{rel} ({reason})" for rel, reason in left_out[:limit])
    more = f", and {n - limit} more" if n > limit else ""
    return f"left out {n} {'entry' if n == 1 else 'entries'}: {shown}{more}" if n else "left out nothing"


def _stored_mode(st: os.stat_result) -> int:
    return stat.S_IMODE(st.st_mode) & 0o777 & ~0o222


def _special(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "not a regular file"


def _hash_file(dir_fd: int, name: str) -> tuple[int, str, int] | None:
    """(stored mode, sha256, size) of a regular file, or None where it is no longer one."""
    with os.fdopen(os.open(name, _READ_FLAGS, dir_fd=dir_fd), "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        return _stored_mode(st), sparse.hash_fd(fh.fileno(), st.st_size), st.st_size


def _judge_link(root: str, rel: str, target: str) -> tuple[str | None, str | None]:
    """(target to store, None) for a link that resolves inside `root`, or (None, why it is left out).

    The stored target is relative to the link's folder and points at the resolved path, so it resolves to
    the same file inside the snapshot wherever the snapshot is mounted (/wb/src in a container)."""
    full = os.path.join(root, rel)
    resolved = os.path.realpath(full)
    if not Path(resolved).is_relative_to(root):
        kind = "directory link" if os.path.isdir(full) else "link"
        return None, f"{kind} to {target} leaves the project"
    try:
        os.stat(full)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, f"link to {target} is a loop"
        # Dangling, but inside the project: harmless, kept as it is.
    return os.path.relpath(resolved, os.path.dirname(full)), None


def _walk(root: str, exclude: list[str]) -> tuple[list[_Entry], list[tuple[str, str]], int, list[tuple[str, int]]]:
    """What a snapshot keeps (directories before what they hold) and leaves out, the bytes it keeps, and its
    files over LARGE_FILE.

    No link is followed: each directory is opened through its parent's descriptor with O_NOFOLLOW and each
    file likewise, so an entry swapped for a link while we walk is reported, not read."""
    excluded = compile_patterns(exclude)
    entries: list[_Entry] = []
    left_out: list[tuple[str, str]] = []
    large: list[tuple[str, int]] = []
    total = 0

    def visit(dir_fd: int, rel_dir: str) -> None:
        nonlocal total
        with os.scandir(dir_fd) as listing:
            names = sorted(e.name for e in listing)
        for name in names:
            rel = rel_dir + name
            if name in ALWAYS_IGNORED or excluded(rel):
                continue
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    target, why = _judge_link(root, rel, os.readlink(name, dir_fd=dir_fd))
                    if why:
                        left_out.append((rel, why))
                    else:
                        entries.append(_Entry("l", rel, 0, target))
                elif stat.S_ISDIR(st.st_mode):
                    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                    try:
                        entries.append(_Entry("d", rel, _stored_mode(os.fstat(fd)), ""))
                        visit(fd, rel + "/")
                    finally:
                        os.close(fd)
                elif stat.S_ISREG(st.st_mode):
                    read = _hash_file(dir_fd, name)
                    if read is None:
                        left_out.append((rel, CHANGED))
                    else:
                        entries.append(_Entry("f", rel, read[0], read[1]))
                        total += read[2]
                        if read[2] > LARGE_FILE:
                            large.append((rel, read[2]))
                else:
                    left_out.append((rel, _special(st.st_mode)))
            except FileNotFoundError:
                continue  # removed while we walk
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):  # swapped since the stat
                    left_out.append((rel, CHANGED))
                    continue
                raise WorkbenchError(f"cannot read {os.path.join(root, rel)} for the snapshot: "
                                     f"{exc.strerror or exc}") from None

    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise WorkbenchError(f"cannot read project folder {root} for the snapshot: {exc.strerror or exc}") from None
    try:
        entries.append(_Entry("d", "", _stored_mode(os.fstat(root_fd)), ""))
        visit(root_fd, "")
    finally:
        os.close(root_fd)
    return entries, sorted(left_out), total, large


def _manifest_bytes(entries: list[_Entry]) -> bytes:
    # NUL cannot occur in a path, so the fields cannot run into each other.
    return b"".join(f"{e.kind}\0{e.mode:03o}\0{e.data}\0{e.rel}\0".encode("utf-8", "surrogateescape")
                    for e in entries)


def _tree_hash(manifest: bytes) -> str:
    return hashlib.sha256(manifest).hexdigest()[:32]


def _parse_manifest(raw: bytes) -> list[_Entry]:
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    if len(fields) % 4 != 1 or fields[-1] != "":
        raise ValueError("truncated manifest")
    return [_Entry(fields[i], fields[i + 3], int(fields[i + 1], 8), fields[i + 2])
            for i in range(0, len(fields) - 1, 4)]


def _write_manifest(store: Path, tree: str, manifest: bytes) -> None:
    """Written to a temporary name, then renamed: a manifest is whole or absent."""
    folder = store / "objects" / MANIFESTS
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(manifest)
        os.chmod(tmp, 0o444)
        os.replace(tmp, folder / tree)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def snapshot_manifest(store: Path, tree: str) -> list[Entry]:
    """The entries of snapshot `tree` in `store`, directories before what they hold (the order its hash is
    taken in). Read from its manifest; for a snapshot taken before manifests were kept (or whose manifest
    does not match its hash), rebuilt by walking the snapshot itself without following links, checked
    against the tree hash, and saved."""
    path = store / "objects" / MANIFESTS / tree
    try:
        raw = path.read_bytes()
        if _tree_hash(raw) == tree:
            return _parse_manifest(raw)
    except (OSError, ValueError):
        pass
    folder = store / tree
    if not folder.is_dir() or folder.is_symlink():
        raise WorkbenchError(f"no snapshot {tree[:12]} in {store}")
    entries, left_out, _, _ = _walk(os.path.realpath(folder), [])
    raw = _manifest_bytes(entries)
    if left_out or _tree_hash(raw) != tree:
        raise WorkbenchError(f"snapshot {tree[:12]} in {store} no longer matches its hash; "
                             f"remove {folder} and launch again")
    _write_manifest(store, tree, raw)
    return entries


def _store_object(objects: Path, source: str, entry: _Entry) -> Path:
    """The object holding `entry`'s bytes with its mode, copied from `source` if no snapshot has it yet."""
    obj = objects / entry.object_name
    if obj.exists():
        return obj
    obj.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=obj.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                src = os.open(source, _READ_FLAGS)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOENT):
                    raise WorkbenchError(f"{source} changed while the snapshot was taken; launch again") from None
                raise WorkbenchError(f"cannot read {source} for the snapshot: {exc.strerror or exc}") from None
            with os.fdopen(src, "rb") as fh:
                # O_NOFOLLOW guards the last component only: a folder above swapped for a link to /dev must
                # not turn this into an endless read of a device
                st = os.fstat(fh.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise WorkbenchError(f"{source} changed while the snapshot was taken; launch again")
                # holes and zero blocks stay holes: 1 GiB of zeros costs no disk here
                digest = sparse.copy_fd(fh.fileno(), out.fileno(), st.st_size)
        # What is stored is exactly what was hashed on the no-follow walk, or nothing.
        if digest != entry.data:
            raise WorkbenchError(f"{source} changed while the snapshot was taken; launch again")
        os.chmod(tmp, entry.mode)
        os.replace(tmp, obj)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return obj


def _copy_object(obj: Path, path: Path, mode: int) -> None:
    src = os.open(obj, _READ_FLAGS)
    try:
        dst = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            sparse.copy_fd(src, dst, os.fstat(src).st_size)
        finally:
            os.close(dst)
    finally:
        os.close(src)
    os.chmod(path, mode)


def take_snapshot(root: Path, exclude: list[str], store: Path) -> Snapshot:
    """Snapshots `root` into `store`. Hold `snapshot_lock(store, exclusive=False)` from here until the hash
    is recorded, so gc cannot remove it in between."""
    real_root = os.path.realpath(root)
    entries, left_out, total, large = _walk(real_root, exclude)
    manifest = _manifest_bytes(entries)
    tree = _tree_hash(manifest)
    files = sum(e.kind == "f" for e in entries)
    final = store / tree
    if final.is_dir():
        if not (store / "objects" / MANIFESTS / tree).is_file():  # taken before manifests were kept
            _write_manifest(store, tree, manifest)
        return Snapshot(tree, final, files, total, left_out, large)

    objects = store / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=store))
    try:
        for e in entries:
            path = staging / e.rel
            if e.kind == "d":
                path.mkdir(exist_ok=True)
            elif e.kind == "l":
                os.symlink(e.data, path)
            else:
                obj = _store_object(objects, os.path.join(real_root, e.rel), e)
                try:
                    os.link(obj, path)
                except OSError:  # too many links to one object: a copy, holes kept
                    _copy_object(obj, path, e.mode)
        # Shared by every run of this content, so nobody writes into it; children before parents, since a
        # parent may lose the search bit.
        for e in reversed(entries):
            if e.kind == "d":
                os.chmod(staging / e.rel, e.mode)
        _write_manifest(store, tree, manifest)  # before the snapshot appears, so none lacks one
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():
                raise
            _remove_tree(staging)  # another process made the same snapshot first
    except BaseException:
        _remove_tree(staging)
        raise
    return Snapshot(tree, final, files, total, left_out, large)


@contextmanager
def snapshot_lock(store: Path, exclusive: bool, timeout: float | None = None) -> Iterator[None]:
    """flock on `store/.lock`. A launch holds it shared from taking its snapshot until the snapshot's hash
    is recorded; gc holds it exclusive while it reads the referenced hashes and deletes, so it never removes
    a snapshot (or staging dir) a launch is about to use. `timeout`: seconds to wait before a WorkbenchError;
    None waits as long as it takes."""
    store.mkdir(parents=True, exist_ok=True)
    fd = os.open(store / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if timeout is None:
            fcntl.flock(fd, op)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, op | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise WorkbenchError(f"snapshot store {store} is busy (a launch or gc holds its lock); "
                                             "try again") from None
                    time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_unreferenced(store: Path, keep: set[str]) -> tuple[int, int]:
    """Deletes snapshots not in `keep` (and their manifests), staging dirs (`.tmp-*`) left by killed launches,
    and objects no snapshot links; returns (snapshots, bytes of objects) freed. Only safe under
    `snapshot_lock(store, exclusive=True)`: without it, a launch may be staging a snapshot or not yet have
    recorded the one it took."""
    if not store.is_dir():
        return 0, 0
    removed = 0
    for entry in store.iterdir():
        if entry.name == "objects" or entry.name in keep or entry.is_symlink() or not entry.is_dir():
            continue
        _remove_tree(entry)
        if not entry.name.startswith(".tmp-"):
            removed += 1
    manifests = store / "objects" / MANIFESTS
    for manifest in _listdir(manifests, depth=1):
        try:
            if manifest.name.startswith(".tmp-"):  # being written (maybe outside the lock), or left by a kill
                if manifest.lstat().st_mtime < time.time() - 3600:
                    manifest.unlink()
            elif not (store / manifest.name).is_dir():
                manifest.unlink()
        except FileNotFoundError:
            continue
    freed = 0
    for obj in _listdir(store / "objects", depth=2):
        if obj.parent == manifests:
            continue
        try:
            st = obj.lstat()
            if st.st_nlink <= 1:
                obj.unlink()
                freed += st.st_size
        except FileNotFoundError:
            continue
    return removed, freed


def _listdir(path: Path, depth: int) -> Iterator[Path]:
    try:
        children = list(path.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    for child in children:
        if depth == 1:
            yield child
        else:
            yield from _listdir(child, depth - 1)


def _remove_tree(path: Path) -> None:
    # Snapshot dirs keep the user's modes minus write (perhaps minus read too): open them up, top down.
    def unlock(directory: str) -> None:
        try:
            os.chmod(directory, 0o700)
            with os.scandir(directory) as listing:
                subdirs = [e.path for e in listing if e.is_dir(follow_symlinks=False)]
        except OSError:
            return
        for sub in subdirs:
            unlock(sub)

    unlock(str(path))
    shutil.rmtree(path, ignore_errors=True)
