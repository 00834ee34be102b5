"""Sending a project's snapshot to an SSH host (a real sshd on loopback): bytes and files sent, and the
time, for the first send, an unchanged project (nothing to send), and a one-line edit of one file.

    python benchmarks/snapshot_upload.py [--files 1000] [--mb 50] [--sparse-gib 1] [--only-sparse]
Targets: an unchanged project sends 0 bytes in one command; an edit sends only the edited file's bytes.
The project: --files files in nested folders, --mb MB in all (one in ten files is large), plus a link.

Then a project holding one sparse file of --sparse-gib GiB (`truncate -s 1G`, a few bytes of data): the
local snapshot's time and the disk its objects take (`du`), and the send's time, data bytes and bytes on
the wire (the SSH connection's TCP bytes acknowledged by the host, from the kernel's tcp_info), and the disk
the host's copy takes. Targets: ~0 disk and ~0 bytes for the holes; the host's file byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from helpers import disk_used, sha256_of, tcp_bytes_acked  # noqa: E402
from sshd_hosts import trusted_loopback_host  # noqa: E402
from workbench.execution.remote_snapshot import remove_unreferenced_remote, send_snapshot  # noqa: E402
from workbench.projects.snapshot import take_snapshot  # noqa: E402


def make_project(root: Path, files: int, total: int) -> Path:
    rng = random.Random(1)
    project = root / "project"
    large = max(1, files // 10)
    large_size = total * 9 // 10 // large
    small_size = max(1, total // 10 // max(1, files - large))
    for i in range(files):
        folder = project / f"pkg{i % 10}" / f"sub{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        size = large_size if i < large else small_size
        (folder / f"file{i}.py").write_bytes(rng.randbytes(size))
    (project / "train.py").write_text("".join(f"print('step {i}')\n" for i in range(200)))
    (project / "latest").symlink_to("train.py")
    return project


def sparse_project(root: Path, conn, gib: float) -> dict[str, object]:
    project = root / "sparse-project"
    project.mkdir()
    (project / "train.py").write_text("print('train')\n")
    size = int(gib * (1 << 30))
    with open(project / "data.bin", "wb") as fh:
        fh.write(b"header")
        fh.seek(size // 2)
        fh.write(b"middle")
        fh.truncate(size)
    store, remote_root = root / "sparse-store", root / "sparse-remote"
    started = time.perf_counter()
    snap = take_snapshot(project, [], store)
    local_s = time.perf_counter() - started
    again = time.perf_counter()
    take_snapshot(project, [], store)
    unchanged_s = time.perf_counter() - again
    sock = conn.transport().sock
    before = tcp_bytes_acked(sock)
    started = time.perf_counter()
    sent = send_snapshot(conn, store, snap.hash, str(remote_root))
    send_s = time.perf_counter() - started
    wire = tcp_bytes_acked(sock) - before

    there = Path(sent.path) / "data.bin"
    return {"file_bytes": size, "local": {"snapshot_s": round(local_s, 3), "unchanged_snapshot_s": round(unchanged_s, 3),
                                          "store_disk_bytes": disk_used(store)},
            "ssh": {"send_s": round(send_s, 3), "data_bytes_sent": sent.bytes_sent, "bytes_on_the_wire": wire,
                    "host_disk_bytes": disk_used(remote_root),
                    "host_file_identical": there.stat().st_size == size and sha256_of(there) == sha256_of(project / "data.bin")}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--sparse-gib", type=float, default=1.0)
    parser.add_argument("--only-sparse", action="store_true", help="measure the sparse project only")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="wb-bench-upload-"))
    host, conn = trusted_loopback_host(root, "gpu-a")
    try:
        conn.transport()  # connected before the clock starts, as a launch finds it
        if args.only_sparse:
            print(json.dumps({"sparse": sparse_project(root, conn, args.sparse_gib)}, indent=2))
            return
        project = make_project(root, args.files, int(args.mb * 1e6))
        store, remote_root = root / "store", str(root / "remote")
        result: dict[str, object] = {"files": args.files + 1, "mb": args.mb}

        def send(label: str) -> None:
            started = time.perf_counter()
            snap = take_snapshot(project, [], store)
            snapshotted = time.perf_counter()
            sent = send_snapshot(conn, store, snap.hash, remote_root)
            done = time.perf_counter()
            result[label] = {"files_sent": sent.files_sent, "bytes_sent": sent.bytes_sent,
                             "snapshot_s": round(snapshotted - started, 3), "send_s": round(done - snapshotted, 3),
                             "mb_per_s": round(sent.bytes_sent / 1e6 / (done - snapshotted), 1)}

        send("first_send")
        send("unchanged")
        with open(project / "train.py", "a") as fh:
            fh.write("print('one more line')\n")
        result["edited_file_bytes"] = os.path.getsize(project / "train.py")
        send("one_file_edit")
        started = time.perf_counter()
        result["remote_gc"] = list(remove_unreferenced_remote(conn, remote_root, set()))
        result["remote_gc_s"] = round(time.perf_counter() - started, 3)
        result["sparse"] = sparse_project(root, conn, args.sparse_gib)
    finally:
        conn.close()
        host.stop()
        shutil.rmtree(root, ignore_errors=True)
    result["targets"] = "unchanged: 0 bytes; one-file edit: that file's bytes only"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
