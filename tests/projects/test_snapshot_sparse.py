"""Snapshots keep sparse files sparse: a 1 GiB file of holes costs (almost) no disk in the store, its object
is named by the hash of its logical bytes (so a sparse and a dense copy of the same bytes are one object),
and what the snapshot holds is byte for byte the original. Real files on the real file system."""

from __future__ import annotations

import hashlib
import os

import pytest

from helpers import disk_used, sha256_of
from workbench.errors import WorkbenchError
from workbench.projects import snapshot as snapshot_module
from workbench.projects.snapshot import take_snapshot

GIB = 1 << 30


def test_a_1_gib_sparse_file_costs_no_disk_in_the_store_and_reads_back_exactly(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text("print('hi')\n")
    with open(root / "data.bin", "wb") as fh:
        fh.write(b"header")
        fh.seek(GIB // 2 + 12345)
        fh.write(os.urandom(70_000))  # spans blocks, at an offset no block starts at
        fh.truncate(GIB)
    (root / "zeros.bin").write_bytes(bytes(5_000_000))  # zeros written as zeros: stored as a hole
    assert (root / "zeros.bin").stat().st_blocks > 0

    snap = take_snapshot(root, [], tmp_path / "store")

    assert snap.bytes == GIB + 5_000_000 + len("print('hi')\n")
    assert disk_used(tmp_path / "store") < 1 << 20  # `du` of the whole store: well under a megabyte
    stored = snap.path / "data.bin"
    assert stored.stat().st_size == GIB
    assert stored.stat().st_blocks * 512 <= 128 << 10
    assert (snap.path / "zeros.bin").stat().st_blocks == 0
    for name in ("data.bin", "zeros.bin", "train.py"):
        want = sha256_of(root / name)
        assert sha256_of(snap.path / name) == want, name
        objects = list((tmp_path / "store" / "objects" / want[:2]).glob(f"{want}-*"))
        assert len(objects) == 1 and objects[0].stat().st_ino == (snap.path / name).stat().st_ino


def test_the_same_bytes_sparse_or_dense_are_one_object_and_one_snapshot(tmp_path):
    size = 8 << 20
    tail = os.urandom(3000)
    sparse_root, dense_root = tmp_path / "a", tmp_path / "b"
    sparse_root.mkdir()
    dense_root.mkdir()
    with open(sparse_root / "data.bin", "wb") as fh:
        fh.truncate(size - len(tail))
        fh.seek(size - len(tail))
        fh.write(tail)
    (dense_root / "data.bin").write_bytes(bytes(size - len(tail)) + tail)
    assert (dense_root / "data.bin").stat().st_blocks * 512 >= size - len(tail)
    store = tmp_path / "store"

    sparse_snap = take_snapshot(sparse_root, [], store)
    dense_snap = take_snapshot(dense_root, [], store)

    assert sparse_snap.hash == dense_snap.hash  # content-addressed: the layout on disk is not content
    assert sha256_of(dense_snap.path / "data.bin") == hashlib.sha256(bytes(size - len(tail)) + tail).hexdigest()
    assert (dense_snap.path / "data.bin").stat().st_blocks * 512 <= 8 << 10


def test_a_sparse_file_changed_between_the_walk_and_the_copy_is_not_stored(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    root.mkdir()
    with open(root / "data.bin", "wb") as fh:
        fh.truncate(64 << 20)
    real_walk = snapshot_module._walk

    def walk_then_write_into_a_hole(*args):
        walked = real_walk(*args)
        with open(root / "data.bin", "r+b") as fh:
            fh.seek(32 << 20)
            fh.write(b"x")  # same size, one byte of a hole is data now
        return walked

    monkeypatch.setattr(snapshot_module, "_walk", walk_then_write_into_a_hole)
    with pytest.raises(WorkbenchError) as caught:
        take_snapshot(root, [], tmp_path / "store")
    assert str(caught.value) == f"{root / 'data.bin'} changed while the snapshot was taken; launch again"
    assert not [p for p in (tmp_path / "store" / "objects").rglob("*") if p.is_file()]
