"""Sending a snapshot to a real sshd on loopback: the host's tree equals the local one (bytes, modes, links,
hard links to content-addressed objects), an unchanged project sends nothing, an edit sends only the edited
file, a drop mid-upload leaves no partial object under a final name and the next send resumes, a full disk
is one clear line, and remote gc keeps what it is told to keep. The host's folder is a local tmp dir, so
the result is read straight off the file system."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from helpers import require, sha256_of, tcp_bytes_acked, wait_for
from workbench.errors import WorkbenchError
from workbench.execution import remote_snapshot
from workbench.execution.remote_snapshot import remove_unreferenced_remote, send_snapshot
from workbench.machines.hostkeys import HostKeyStore
from workbench.machines.ssh import Connection, SSHTarget, fetch_host_key
from workbench.projects.snapshot import (MANIFESTS, remove_unreferenced, snapshot_lock, snapshot_manifest,
                                         take_snapshot)

ODD_NAME = "it's a \"file\" $HOME `x`.txt"
NEWLINE_NAME = "two\nlines.txt"


@pytest.fixture
def conn(ssh_env, tmp_path):
    hostkeys = HostKeyStore(tmp_path / "known_hosts", system=())
    target = SSHTarget(name="gpu-a", hostname=ssh_env.gpu.address, port=ssh_env.gpu.port, user="root",
                       identity_files=[str(ssh_env.user_key)])
    hostkeys.trust(target.hostname, target.port, fetch_host_key(target, hostkeys))
    connection = Connection(target, hostkeys)
    yield connection
    connection.close()


@pytest.fixture
def remote_root(tmp_path) -> Path:
    return tmp_path / "remote wb's home"  # a space and a quote in every remote path


def make_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "src" / "models" / "deep").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "train.py").write_text("print('train')\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / "secret.cfg").write_text("token = 42\n")
    (root / "secret.cfg").chmod(0o600)
    (root / "src" / "models" / "deep" / "net.py").write_text("".join(f"layer {i}\n" for i in range(2000)))
    (root / "src" / "models" / "copy.py").write_text("print('train')\n")  # same bytes as train.py: one object
    (root / "data" / ODD_NAME).write_bytes(os.urandom(300_000))
    (root / "data" / NEWLINE_NAME).write_text("newline in the name\n")
    (root / "src" / "net_link.py").symlink_to("models/deep/net.py")
    (root / "data" / "up").symlink_to("../src")
    (root / "src" / "models").chmod(0o750)
    return root


def tree_of(path: Path) -> dict[str, tuple]:
    """Every entry below `path`, links not followed: (kind, permission bits, bytes or link target)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(path))
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("f", stat.S_IMODE(st.st_mode), full.read_bytes())
    out["."] = ("d", stat.S_IMODE(path.lstat().st_mode))
    return out


def remote_objects(remote_root: Path) -> dict[str, Path]:
    objects = remote_root / "snapshots" / "objects"
    return {f"{p.parent.name}/{p.name}": p for p in objects.glob("*/*")}


def check_objects_are_whole(remote_root: Path) -> None:
    """Every object under a final name holds exactly the bytes its name hashes, with its name's mode."""
    for name, path in remote_objects(remote_root).items():
        if path.name.startswith(".tmp-"):
            continue
        digest, mode = path.name.rsplit("-", 1)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
        assert stat.S_IMODE(path.stat().st_mode) == int(mode, 8) & 0o700, name  # the user's bits only


def on_host(tree: dict[str, tuple]) -> dict[str, tuple]:
    """A local tree as the host keeps it: the user's permission bits only (nothing for group or others)."""
    return {rel: (entry[0], entry[1] & 0o700, *entry[2:]) if entry[0] != "l" else entry for rel, entry in tree.items()}


def assert_same_tree(local: Path, remote: Path, remote_root: Path) -> None:
    assert tree_of(remote) == on_host(tree_of(local))
    objects = {p.stat().st_ino for p in remote_objects(remote_root).values()}
    for dirpath, _, filenames in os.walk(remote):
        for name in filenames:
            st = (Path(dirpath) / name).lstat()
            if stat.S_ISREG(st.st_mode):
                assert st.st_ino in objects and st.st_nlink >= 2  # a hard link to its object, not a copy
    check_objects_are_whole(remote_root)


def test_first_send_recreates_the_tree_and_a_second_sends_nothing(conn, tmp_path, remote_root):
    store = tmp_path / "store"
    snap = take_snapshot(make_project(tmp_path), [], store)
    lines: list[str] = []

    sent = send_snapshot(conn, store, snap.hash, str(remote_root), lines.append)

    remote = remote_root / "snapshots" / snap.hash
    assert sent.path == str(remote)
    assert_same_tree(snap.path, remote, remote_root)
    assert stat.S_IMODE((remote / "run.sh").stat().st_mode) == 0o500  # 0755 here: executable, the user's alone
    assert stat.S_IMODE((remote / "secret.cfg").stat().st_mode) == 0o400
    assert stat.S_IMODE((remote / "src" / "models").stat().st_mode) == 0o500
    for folder in (remote_root / "snapshots", remote_root / "snapshots" / "objects"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (remote / "src" / "net_link.py").read_text().startswith("layer 0\n")
    files = [p for p in snap.path.rglob("*") if p.is_file() and not p.is_symlink()]
    assert sent.files_sent == len(files) - 1  # train.py and copy.py share one object
    assert sent.bytes_sent == sum(p.stat().st_size for p in files) - len("print('train')\n")
    size = f"{sent.bytes_sent / 1000:.1f} kB"  # 0.3 MB
    assert lines[0] == f"snapshot {snap.hash[:12]} → gpu-a: {sent.files_sent} of {sent.files_sent} files to send ({size})"
    assert lines[-1].startswith(f"snapshot {snap.hash[:12]} → gpu-a: sent {sent.files_sent} file{'' if sent.files_sent == 1 else 's'} ({size}) in ")
    assert not list((remote_root / "snapshots").glob(".tmp-*"))  # the staging folder is gone

    lines.clear()
    again = send_snapshot(conn, store, snap.hash, str(remote_root), lines.append)
    assert (again.files_sent, again.bytes_sent, again.path) == (0, 0, str(remote))
    assert lines == [f"snapshot {snap.hash[:12]} → gpu-a: already there"]


def test_a_one_line_edit_sends_only_that_file(conn, tmp_path, remote_root):
    store = tmp_path / "store"
    root = make_project(tmp_path)
    first = take_snapshot(root, [], store)
    send_snapshot(conn, store, first.hash, str(remote_root))
    with open(root / "src" / "models" / "deep" / "net.py", "a") as fh:
        fh.write("one more layer\n")
    second = take_snapshot(root, [], store)
    assert second.hash != first.hash

    sent = send_snapshot(conn, store, second.hash, str(remote_root))

    assert sent.files_sent == 1
    assert sent.bytes_sent == (root / "src" / "models" / "deep" / "net.py").stat().st_size
    assert_same_tree(second.path, remote_root / "snapshots" / second.hash, remote_root)
    assert_same_tree(first.path, remote_root / "snapshots" / first.hash, remote_root)  # untouched


def test_a_drop_mid_upload_leaves_no_partial_object_and_the_next_send_resumes(conn, tmp_path, remote_root,
                                                                               monkeypatch):
    store = tmp_path / "store"
    snap = take_snapshot(make_project(tmp_path), [], store)
    monkeypatch.setattr(remote_snapshot, "CHUNK", 4096)
    monkeypatch.setattr(remote_snapshot, "UPLOAD_CHANNELS", 1)  # one file at a time: the count is exact
    real_copy = remote_snapshot._copy
    calls, dropped = [], []

    def dropping_copy(src, dst, size):
        calls.append(1)
        # after the first file, the first one of several chunks: part of it goes out, then the connection drops
        if len(calls) >= 2 and not dropped and os.fstat(src.fileno()).st_size > 3 * 4096:
            dropped.append(len(calls) - 1)
            dst.write(src.read(8192))
            dst.flush()
            wait_for(lambda: any(".tmp-" in n and p.stat().st_size >= 8192
                                 for n, p in remote_objects(remote_root).items()), timeout=10)
            conn.close_transport()
        return real_copy(src, dst, size)

    monkeypatch.setattr(remote_snapshot, "_copy", dropping_copy)
    total = len({e.object_name for e in snapshot_manifest(store, snap.hash) if e.kind == "f"})
    with pytest.raises(WorkbenchError) as caught:
        send_snapshot(conn, store, snap.hash, str(remote_root))
    message = str(caught.value)
    assert dropped, "the drop never happened"
    assert message == (f"gpu-a: the connection dropped while sending snapshot {snap.hash[:12]} "
                       f"({dropped[0]} of {total} files sent); launch again to resume")
    assert "\n" not in message
    check_objects_are_whole(remote_root)
    finals = [n for n in remote_objects(remote_root) if ".tmp-" not in n]
    partial = [p for n, p in remote_objects(remote_root).items() if ".tmp-" in n]
    assert len(finals) == dropped[0]
    assert len(partial) == 1 and partial[0].stat().st_size >= 8192  # what the drop cut short, under a temporary name
    assert not (remote_root / "snapshots" / snap.hash).exists()

    monkeypatch.setattr(remote_snapshot, "_copy", real_copy)
    resumed = send_snapshot(conn, store, snap.hash, str(remote_root))
    assert resumed.files_sent == total - dropped[0]
    assert_same_tree(snap.path, remote_root / "snapshots" / snap.hash, remote_root)


def test_remote_gc_keeps_what_is_kept_and_removes_the_rest(conn, tmp_path, remote_root):
    store = tmp_path / "store"
    root = make_project(tmp_path)
    old = take_snapshot(root, [], store)
    send_snapshot(conn, store, old.hash, str(remote_root))
    (root / "train.py").write_text("print('train v2')\n")
    new = take_snapshot(root, [], store)
    send_snapshot(conn, store, new.hash, str(remote_root))
    snapshots = remote_root / "snapshots"
    before = set(remote_objects(remote_root))
    stale = snapshots / f".tmp-{old.hash}-dead"  # a staging folder left by a killed send, read-only inside
    (stale / old.hash / "sub").mkdir(parents=True)
    (stale / old.hash / "sub").chmod(0o500)
    fresh = snapshots / f".tmp-{new.hash}-live"  # one a send is building now
    fresh.mkdir()
    stale_object = snapshots / "objects" / "ab" / (".tmp-" + "ab" * 32 + "-444-dead")
    stale_object.parent.mkdir(exist_ok=True)
    stale_object.write_text("half")
    two_hours_ago = time.time() - 7200
    for path in (stale / old.hash / "sub", stale / old.hash, stale, stale_object):
        os.utime(path, (two_hours_ago, two_hours_ago))

    removed = remove_unreferenced_remote(conn, str(remote_root), {new.hash})

    # the old train.py is the only object the new tree does not share (copy.py still holds the old bytes)
    assert removed == (1, 0)
    assert not (snapshots / old.hash).exists() and not stale.exists() and not stale_object.exists()
    assert fresh.exists()
    assert_same_tree(new.path, snapshots / new.hash, remote_root)

    (root / "src" / "models" / "copy.py").write_text("print('copy v2')\n")
    newer = take_snapshot(root, [], store)
    send_snapshot(conn, store, newer.hash, str(remote_root))
    assert remove_unreferenced_remote(conn, str(remote_root), {newer.hash}) == (1, 1)  # the old train.py bytes
    assert_same_tree(newer.path, snapshots / newer.hash, remote_root)
    assert len(remote_objects(remote_root)) == len(before)  # one old object out, one new in

    left = len(remote_objects(remote_root))
    assert remove_unreferenced_remote(conn, str(remote_root), set()) == (1, left)
    assert sorted(p.name for p in snapshots.iterdir()) == [fresh.name, "objects"]
    assert [p.name for p in remote_objects(remote_root).values()] == []
    assert remove_unreferenced_remote(conn, str(tmp_path / "never used"), set()) == (0, 0)


def test_a_full_disk_on_the_host_is_one_clear_line(conn, tmp_path):
    remote_root = tmp_path / "small"
    remote_root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(remote_root)],
                             capture_output=True)
    require(mounted.returncode == 0, "cannot mount a small tmpfs here (needs root)")
    try:
        store = tmp_path / "store"
        snap = take_snapshot(make_project(tmp_path), [], store)  # 0.3 MB of random bytes in one file
        with pytest.raises(WorkbenchError) as caught:
            send_snapshot(conn, store, snap.hash, str(remote_root))
        assert str(caught.value).startswith(f"gpu-a: no space left on the host under {remote_root} "
                                            "while sending the snapshot")
        check_objects_are_whole(remote_root)
        assert not [n for n in remote_objects(remote_root) if ".tmp-" in n]  # the partial one was removed
    finally:
        subprocess.run(["umount", str(remote_root)], check=True)


def test_manifests_are_kept_rebuilt_for_old_snapshots_and_removed_with_their_tree(tmp_path):
    store = tmp_path / "store"
    root = make_project(tmp_path)
    snap = take_snapshot(root, [], store)
    manifest = store / "objects" / MANIFESTS / snap.hash
    kept = snapshot_manifest(store, snap.hash)
    assert manifest.is_file()
    assert {e.rel for e in kept} >= {"", "run.sh", f"data/{ODD_NAME}", f"data/{NEWLINE_NAME}", "data/up"}
    assert [e for e in kept if e.rel == "src/net_link.py"][0][::3] == ("l", "models/deep/net.py")

    manifest.unlink()  # a snapshot taken before manifests were kept
    assert snapshot_manifest(store, snap.hash) == kept
    assert manifest.read_bytes()  # and saved
    manifest.chmod(0o644)
    manifest.write_bytes(b"f\x00444\x00" + b"0" * 64 + b"\x00evil\x00")  # not what the hash was taken over
    assert snapshot_manifest(store, snap.hash) == kept

    (root / "train.py").write_text("changed\n")
    other = take_snapshot(root, [], store)
    with snapshot_lock(store, exclusive=True):
        assert remove_unreferenced(store, {other.hash})[0] == 1
    assert not manifest.exists() and (store / "objects" / MANIFESTS / other.hash).is_file()
    assert sorted(p.name for p in store.iterdir()) == [".lock", other.hash, "objects"]
    with pytest.raises(WorkbenchError, match=f"no snapshot {snap.hash[:12]}"):
        snapshot_manifest(store, snap.hash)


def test_a_large_stdin_goes_through_while_the_command_writes(conn):
    """A command's stdin far larger than the SSH window (a snapshot script for many files), while the
    command writes as much back: no timeout, no deadlock, every byte both ways."""
    data = bytes(range(256)) * (12 * 4096)  # 12 MiB
    status, out, err = conn.run(["sh", "-c", "tee /dev/stderr | wc -c"], timeout=120, stdin=data)
    assert (status, out.strip(), len(err)) == (0, str(len(data)).encode(), len(data))


def make_sparse_project(tmp_path: Path) -> Path:
    """A 256 MiB file that is mostly holes (data at the start, a few bytes at an odd offset in the middle,
    a hole at the end), 3 MB of zeros written as zeros, and a file that is holes then data to its end."""
    root = tmp_path / "sparse"
    root.mkdir()
    with open(root / "data.bin", "wb") as fh:
        fh.write(os.urandom(5000))
        fh.seek(100_000_007)
        fh.write(b"middle")
        fh.truncate(256 << 20)
    (root / "zeros.bin").write_bytes(bytes(3_000_000))
    with open(root / "tail.bin", "wb") as fh:
        fh.seek(50 << 20)
        fh.write(b"the end")
    (root / "train.py").write_text("print('train')\n")
    return root


def test_a_sparse_file_travels_as_its_data_and_stays_sparse_on_the_host(conn, tmp_path, remote_root):
    root = make_sparse_project(tmp_path)
    store = tmp_path / "store"
    snap = take_snapshot(root, [], store)
    data = 5000 + len(b"middle") + len(b"the end") + len("print('train')\n")

    sock = conn.transport().sock
    before = tcp_bytes_acked(sock)
    lines: list[str] = []
    sent = send_snapshot(conn, store, snap.hash, str(remote_root), lines.append)
    on_the_wire = tcp_bytes_acked(sock) - before

    assert sent.files_sent == 4
    assert data <= sent.bytes_sent <= data + 3 * 4096  # the data extents, whole file-system blocks
    assert 0 < on_the_wire < 256 << 10, on_the_wire  # 309 MiB of files, a few kB of data: commands and framing
    assert re.fullmatch(rf"snapshot {snap.hash[:12]} → gpu-a: 4 of 4 files to send \(323\.9 MB, [\d.]+ kB of it "
                        r"data\)", lines[0]), lines[0]
    remote = remote_root / "snapshots" / snap.hash
    for name in ("data.bin", "zeros.bin", "tail.bin", "train.py"):
        local, there = root / name, remote / name
        assert there.stat().st_size == local.stat().st_size, name
        assert sha256_of(there) == sha256_of(local), name  # byte for byte the original
    assert (remote / "data.bin").stat().st_blocks * 512 <= 64 << 10  # `du`: the holes stayed holes
    assert (remote / "zeros.bin").stat().st_blocks == 0
    assert (remote / "tail.bin").stat().st_blocks * 512 <= 8 << 10
    check_objects_are_whole(remote_root)
    assert_same_tree(snap.path, remote, remote_root)

    assert send_snapshot(conn, store, snap.hash, str(remote_root)).bytes_sent == 0


def test_a_drop_while_sending_a_sparse_file_leaves_no_object_and_the_next_send_makes_it_whole(
        conn, tmp_path, remote_root, monkeypatch):
    store = tmp_path / "store"
    snap = take_snapshot(make_sparse_project(tmp_path), [], store)
    monkeypatch.setattr(remote_snapshot, "UPLOAD_CHANNELS", 1)
    real_copy = remote_snapshot._copy

    def dropping_copy(src, dst, size):
        if size == 256 << 20:  # data.bin: its first piece goes out, then the connection drops before the rest
            dst.write(src.read(5000))
            dst.flush()
            conn.close_transport()
        return real_copy(src, dst, size)

    monkeypatch.setattr(remote_snapshot, "_copy", dropping_copy)
    with pytest.raises(WorkbenchError, match="the connection dropped while sending snapshot"):
        send_snapshot(conn, store, snap.hash, str(remote_root))
    check_objects_are_whole(remote_root)
    monkeypatch.setattr(remote_snapshot, "_copy", real_copy)
    send_snapshot(conn, store, snap.hash, str(remote_root))
    remote = remote_root / "snapshots" / snap.hash
    assert sha256_of(remote / "data.bin") == sha256_of(snap.path / "data.bin")
    check_objects_are_whole(remote_root)
