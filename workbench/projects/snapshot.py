"""Content-addressed snapshots of a project folder.

Each file's bytes are stored once under `snapshots/objects/` (named by sha256); a snapshot is a directory
`snapshots/<tree-hash>/` of hard links to those objects. The same content gives the same tree hash, so a
hundred runs of an unchanged project share one snapshot, and a small edit shares every unchanged file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.projects.patterns import ALWAYS_IGNORED, compile_patterns

CHUNK = 1 << 20


@dataclass(frozen=True)
class Snapshot:
    hash: str
    path: Path
    files: int
    bytes: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan(root: Path, exclude: list[str]) -> list[tuple[str, Path, bool]]:
    """(relative posix path, absolute path, executable) of every file a snapshot keeps, sorted."""
    excluded = compile_patterns(exclude)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if d not in ALWAYS_IGNORED and not excluded(rel_dir + d))
        for name in filenames:
            rel = rel_dir + name
            full = Path(dirpath) / name
            try:
                st = full.stat()
            except OSError:
                continue  # a dangling link or a file removed while we walk
            if not stat.S_ISREG(st.st_mode) or excluded(rel):
                continue
            found.append((rel, full, bool(st.st_mode & stat.S_IXUSR)))
    found.sort()
    return found


def take_snapshot(root: Path, exclude: list[str], store: Path) -> Snapshot:
    objects = store / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    entries, total = [], 0
    manifest = hashlib.sha256()
    for rel, full, executable in scan(root, exclude):
        try:
            digest = _sha256(full)
            size = full.stat().st_size
        except OSError as exc:
            raise WorkbenchError(f"cannot read {full} for the snapshot: {exc}") from None
        entries.append((rel, full, executable, digest))
        total += size
        manifest.update(f"{'x' if executable else '-'} {digest} {rel}\n".encode())
    tree = manifest.hexdigest()[:32]
    final = store / tree
    if final.is_dir():
        return Snapshot(tree, final, len(entries), total)

    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=store))
    try:
        for rel, full, executable, digest in entries:
            obj = objects / digest[:2] / digest
            if not obj.exists():
                obj.parent.mkdir(exist_ok=True)
                tmp = obj.with_name(f".{digest}.{os.getpid()}")
                shutil.copyfile(full, tmp)
                os.chmod(tmp, 0o555 if executable else 0o444)
                os.replace(tmp, obj)
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(obj, target)
            except OSError:
                shutil.copy2(obj, target)
        for directory, _, _ in os.walk(staging):
            os.chmod(directory, 0o555)  # shared by every run of this content: nobody writes into it
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():
                raise
            _remove_tree(staging)  # another process made the same snapshot first
    except BaseException:
        _remove_tree(staging)
        raise
    return Snapshot(tree, final, len(entries), total)


def remove_unreferenced(store: Path, keep: set[str]) -> tuple[int, int]:
    """Deletes snapshots not in `keep` and objects no snapshot links; returns (snapshots, bytes) freed."""
    if not store.is_dir():
        return 0, 0
    removed = 0
    for entry in store.iterdir():
        if entry.name == "objects" or not entry.is_dir() or entry.name in keep:
            continue
        if entry.name.startswith(".tmp-"):
            continue
        _remove_tree(entry)
        removed += 1
    freed = 0
    objects = store / "objects"
    if objects.is_dir():
        for obj in objects.glob("*/*"):
            st = obj.stat()
            if st.st_nlink <= 1:
                freed += st.st_size
                obj.unlink()
    return removed, freed


def _remove_tree(path: Path) -> None:
    for directory, _, _ in os.walk(path):
        try:
            os.chmod(directory, 0o755)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)
