"""Sending a local content-addressed snapshot to an SSH host, and gc of what a host holds.

The host gets the same layout as the local store, under a Workbench folder of its own (`remote_root`):
`snapshots/objects/<2 hex>/<sha256>-<mode>` and `snapshots/<tree>/` of hard links to them, relative
symlinks, read-only modes that are the user's alone (see `_on_host`; the folders Workbench makes there are
0700). Only a POSIX shell and an SFTP server are needed on the host (no python):

1. `test -d snapshots/<tree>`: a host that has the snapshot already costs one command and no bytes.
2. One `sh` loop over the needed object names (sent on stdin) prints the ones the host lacks.
3. Each missing object goes over SFTP to a temporary name in its folder, its size is checked, its mode set,
   and only then is it renamed to its final name: a dropped connection never leaves a partial object under
   a final name, and the next send resumes with the objects still missing.
4. One generated `sh` script (on stdin, every path through shlex.quote) builds the tree in a staging folder
   `snapshots/.tmp-<tree>-<random>/<tree>` and moves it into place; if another launch put the same tree
   there first, the staging copy is dropped.

Remote paths are absolute or relative to the remote user's home (`~/` is read as the home).
"""

from __future__ import annotations

import errno
import posixpath
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import paramiko

from workbench.errors import WorkbenchError
from workbench.execution.hosts import free_bytes, sha256_on_host
from workbench.execution.scripts import q
from workbench.machines.ssh import Connection, SSHError
from workbench.projects import sparse
from workbench.projects.snapshot import Entry, snapshot_manifest

CHUNK = 1 << 18
BATCH = 64  # paths per mkdir/chmod command line in the generated script
UPLOAD_CHANNELS = 4  # SFTP channels at once for one send
SFTP_WINDOW = 1 << 24
STALE_MINUTES = 60  # staging folders and temporary objects older than this are left by killed sends

# Prints the object names (read one a line on stdin) that the objects folder ($1) lacks, after making the
# two-hex folders named in the other arguments.
_MISSING = r"""set -e
umask 077
mkdir -p -- "$1"
chmod 700 -- "${1%/*}" "$1"
cd -- "$1"
shift
[ "$#" -eq 0 ] || mkdir -p -- "$@"
while IFS= read -r name; do
  [ -f "$name" ] || printf '%s\n' "$name"
done
"""

# $1: the snapshots folder; the kept tree names on stdin, one a line. Prints "<trees> <objects>" removed.
_GC = r"""set -e
cd -- "$1" 2>/dev/null || { echo "0 0"; exit 0; }
keep=" "
while IFS= read -r k; do keep="$keep$k "; done
open_up() { find "$1" -type d -exec chmod u+rwx {} + 2>/dev/null || true; }
trees=0
for d in *; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  case "$d" in objects|manifests) continue ;; esac
  case "$keep" in *" $d "*) continue ;; esac
  open_up "$d"
  rm -rf -- "$d"
  trees=$((trees + 1))
done
for d in .tmp-*; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  [ -n "$(find "$d" -prune -mmin +STALE)" ] || continue
  open_up "$d"
  rm -rf -- "$d"
done
objects=0
if [ -d objects ]; then
  find objects -type f -name '.tmp-*' -mmin +STALE -exec rm -f -- {} +
  objects=$(find objects -type f -links 1 ! -name '.tmp-*' -print -exec rm -f -- {} + | wc -l)
fi
echo "$trees $((objects + 0))"
""".replace("STALE", str(STALE_MINUTES))


@dataclass(frozen=True)
class SentSnapshot:
    path: str        # the tree's folder on the host
    files_sent: int  # objects uploaded (files with the same bytes and mode share one)
    bytes_sent: int


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _remote_root(remote_root: str) -> str:
    if remote_root == "~":
        return "."
    if remote_root.startswith("~/"):
        return remote_root[2:] or "."
    return remote_root


def _run(conn: Connection, argv: list[str], what: str, stdin: bytes | None = None,
         timeout: float = 30.0) -> tuple[int, str, str]:
    try:
        status, out, err = conn.run(argv, timeout=timeout, stdin=stdin)
    except SSHError as exc:
        raise WorkbenchError(f"{conn.target.name}: {what} failed: {exc.message}") from None
    return status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _no_space(conn: Connection, root: str) -> WorkbenchError:
    return WorkbenchError(f"{conn.target.name}: no space left on the host under {root} while sending the snapshot",
                          hint=f"free space on {conn.target.name} (workbench gc removes unused snapshots)")


def _looks_full(conn: Connection, folder: str, need: int) -> bool:
    """SFTP (protocol 3) reports ENOSPC as a bare "Failure": ask df how much room is left."""
    available = free_bytes(conn, folder)
    return available is not None and available < need + (1 << 20)


def _on_host(mode: int) -> int:
    """A snapshot file's or dir's mode on a host: the user's own bits of it (0400 a file, 0500 an executable
    or a dir), nothing for group or others, whatever the local mode."""
    return mode & 0o700


def _materialise_script(snapshots: str, tree: str, entries: list[Entry]) -> str:
    staging = f".tmp-{tree}-{secrets.token_hex(6)}"
    lines = ["set -e", "umask 077", f"cd -- {q(snapshots)}", f"mkdir -m 700 -- {staging}", f"mkdir -- {staging}/{tree}",
             f"cd -- {staging}/{tree}"]

    def batched(command: str, paths: list[str]) -> None:
        for i in range(0, len(paths), BATCH):
            lines.append(f"{command} -- " + " ".join(q(p) for p in paths[i:i + BATCH]))

    batched("mkdir", [e.rel for e in entries if e.kind == "d" and e.rel])
    for e in entries:
        if e.kind == "f":
            source = q(f"../../objects/{e.object_name}")
            lines.append(f"ln -- {source} {q(e.rel)} 2>/dev/null || cp -p -- {source} {q(e.rel)}")
        elif e.kind == "l":
            lines.append(f"ln -s -- {q(e.data)} {q(e.rel)}")
    # Children before parents (a parent may lose its write bit); the root last, below.
    run: list[str] = []
    run_mode = None
    for e in reversed(entries):
        if e.kind != "d" or not e.rel:
            continue
        if e.mode != run_mode and run:
            batched(f"chmod {_on_host(run_mode):o}", run)
            run = []
        run_mode = e.mode
        run.append(e.rel)
    if run:
        batched(f"chmod {_on_host(run_mode):o}", run)
    root_mode = _on_host(next((e.mode for e in entries if e.kind == "d" and not e.rel), 0o555))
    lines += [
        "cd ../..",
        f"chmod {root_mode:o} -- {staging}/{tree}",
        # mv into `.` (not onto the tree's name), so a tree another launch made meanwhile is never moved into:
        # the rename onto a non-empty folder fails instead.
        f"if mv -- {staging}/{tree} . 2>/dev/null; then echo made",
        f"elif [ -d {tree} ]; then echo existed",
        # a user other than root may not move a read-only folder to another parent
        f"else chmod u+w -- {staging}/{tree} && mv -- {staging}/{tree} . && chmod {root_mode:o} -- {tree} && echo made",
        "fi",
        f"find {staging} -type d -exec chmod u+rwx {{}} + 2>/dev/null || true",
        f"rm -rf -- {staging}",
    ]
    return "\n".join(lines) + "\n"


def send_snapshot(conn: Connection, store: Path, tree: str, remote_root: str,
                  progress: Callable[[str], None] = lambda line: None,
                  is_dir: Callable[[str], bool] | None = None) -> SentSnapshot:
    """Makes `<remote_root>/snapshots/<tree>` on the host equal to the local snapshot `store/<tree>`, sending
    only the objects the host lacks. Raises WorkbenchError (one line naming the host) when it cannot."""
    name = conn.target.name
    root = _remote_root(remote_root)
    snapshots = posixpath.join(root, "snapshots")
    objects = posixpath.join(snapshots, "objects")
    final = posixpath.join(snapshots, tree)
    label = f"snapshot {tree[:12]} → {name}"
    started = time.monotonic()

    # `is_dir` (the host's SFTP, when the caller has it) saves starting a command on the host
    if is_dir(final) if is_dir is not None else \
            _run(conn, ["test", "-d", final], f"checking for snapshot {tree[:12]}")[0] == 0:
        progress(f"{label}: already there")
        return SentSnapshot(final, 0, 0)

    entries = snapshot_manifest(store, tree)
    needed: dict[str, Entry] = {}
    for e in entries:
        if e.kind == "f":
            needed.setdefault(e.object_name, e)
    folders = sorted({obj[:2] for obj in needed})
    status, out, err = _run(conn, ["sh", "-c", _MISSING, "sh", objects, *folders],
                            "asking which files it lacks", stdin="".join(f"{o}\n" for o in needed).encode(),
                            timeout=60 + len(needed) * 0.001)
    if status != 0:
        if "No space left" in err:
            raise _no_space(conn, root)
        raise WorkbenchError(f"{name}: cannot prepare {objects}: {_last_line(err)}")
    missing = [obj for obj in out.splitlines() if obj in needed]
    sizes = {obj: (store / tree / needed[obj].rel).stat().st_size for obj in missing}
    total = sum(sizes.values())
    data = sum(sparse.data_bytes(str(store / tree / needed[o].rel)) if sizes[o] > sparse.CHUNK else sizes[o]
               for o in missing)  # holes are not sent
    progress(f"{label}: {len(missing)} of {len(needed)} files to send ({_size(total)}"
             + (f", {_size(data)} of it data)" if data < total else ")"))

    sent_files = sent_bytes = 0
    if missing:
        sent_files, sent_bytes = _upload(conn, store, tree, root, objects, missing, needed, sizes)

    script = _materialise_script(snapshots, tree, entries)
    status, out, err = _run(conn, ["sh", "-s"], f"building snapshot {tree[:12]} in {snapshots}",
                            stdin=script.encode("utf-8", "surrogateescape"), timeout=60 + len(entries) * 0.02)
    if status != 0:
        if "No space left" in err:
            raise _no_space(conn, root)
        raise WorkbenchError(f"{name}: cannot build snapshot {tree[:12]} in {snapshots}: {_last_line(err)}",
                             hint="launch again")
    progress(f"{label}: sent {sent_files} file{'' if sent_files == 1 else 's'} ({_size(sent_bytes)}) in "
             f"{time.monotonic() - started:.1f}s")
    return SentSnapshot(final, sent_files, sent_bytes)


def _open_sftp(conn: Connection, transport: paramiko.Transport) -> paramiko.SFTPClient:
    sftp = paramiko.SFTPClient.from_transport(transport, window_size=SFTP_WINDOW)
    if sftp is None:
        raise paramiko.SSHException("the SFTP subsystem did not start")
    return sftp


def _upload(conn: Connection, store: Path, tree: str, root: str, objects: str, missing: list[str],
            needed: dict[str, Entry], sizes: dict[str, int]) -> tuple[int, int]:
    """Each object to a temporary name, size checked, mode set, then renamed into place; over up to
    UPLOAD_CHANNELS SFTP channels at once (each file costs several round trips: in parallel, they overlap).
    The channels count against the connection's channel budget: only the first waits for a slot."""
    name = conn.target.name
    try:
        transport = conn.transport()
    except SSHError as exc:
        raise WorkbenchError(f"{name}: cannot connect to send the snapshot: {exc.message}") from None
    budget: threading.BoundedSemaphore | None = getattr(conn, "channels", None)
    clients: list[paramiko.SFTPClient] = []
    held = 0
    try:
        for i in range(min(UPLOAD_CHANNELS, len(missing))):
            if budget is not None:
                if not budget.acquire(blocking=i == 0):
                    break
                held += 1
            try:
                clients.append(_open_sftp(conn, transport))
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if i == 0:
                    raise WorkbenchError(f"{name}: cannot open SFTP to send the snapshot: {exc}",
                                         hint="the host's sshd needs `Subsystem sftp`") from None
                break  # the host allows fewer sessions: go on with the channels we have
        pending = iter(missing)
        lock = threading.Lock()
        done, sent = [0], [0]
        failures: list[tuple[Exception, str, int, str]] = []  # (error, object, size, temporary name)

        def work(sftp: paramiko.SFTPClient) -> None:
            while True:
                with lock:
                    if failures:
                        return
                    obj = next(pending, None)
                if obj is None:
                    return
                tmp = posixpath.join(objects, obj[:2], f".tmp-{obj[3:]}-{secrets.token_hex(4)}")
                try:
                    data = _send_one(sftp, store / tree / needed[obj].rel, tmp, posixpath.join(objects, obj),
                                     sizes[obj], needed[obj].mode, lambda path: sha256_on_host(conn, path, sizes[obj]))
                except Exception as exc:  # noqa: BLE001 - reported below, once every channel has stopped
                    with lock:
                        failures.append((exc, obj, sizes[obj], tmp))
                    return
                with lock:
                    done[0] += 1
                    sent[0] += data

        threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients[1:]]
        for thread in threads:
            thread.start()
        work(clients[0])
        for thread in threads:
            thread.join()
        if failures:
            exc, obj, size, tmp = failures[0]
            if isinstance(exc, WorkbenchError):
                raise exc
            if not transport.is_active():
                raise WorkbenchError(f"{name}: the connection dropped while sending snapshot {tree[:12]} "
                                     f"({done[0]} of {len(missing)} files sent); launch again to resume") from None
            target = posixpath.join(objects, obj)
            for _, _, _, partial in failures:
                _remove_quietly(clients[0], partial)
            full = getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc)
            if full or (isinstance(exc, OSError) and _looks_full(conn, posixpath.dirname(target), size)):
                raise _no_space(conn, root) from None
            raise WorkbenchError(f"{name}: sending {needed[obj].rel} to {target} failed: {exc}",
                                 hint="launch again") from None
        return done[0], sent[0]
    finally:
        for client in clients:
            try:
                client.close()
            except (paramiko.SSHException, EOFError, OSError):
                pass
        for _ in range(held):
            budget.release()  # type: ignore[union-attr]


def _copy(src: BinaryIO, dst: paramiko.SFTPFile, size: int) -> int:
    sent = 0
    for offset, chunk in sparse.pieces(src.fileno(), size, CHUNK):
        if offset != dst.tell():
            dst.seek(offset)
        dst.write(chunk)
        sent += len(chunk)
    if dst.tell() != size:  # ends in a hole
        dst.flush()
        dst.truncate(size)
    return sent


class _ShortWrite(OSError):
    """The file arrived shorter than it is (paramiko can lose a pipelined write's error: a full disk)."""


def _send_one(sftp: paramiko.SFTPClient, source: Path, tmp: str, target: str, size: int, mode: int,
              sha256_there: Callable[[str], str | None]) -> int:
    """Sends one object; returns the bytes of data sent. Only its non-zero pieces travel, each written at
    its offset, and the size is set at the end: the host's sftp-server leaves the gaps as holes, so a
    sparse file stays sparse there and a hole costs no bytes on the wire. Such a file's size proves nothing
    (a pipelined write lost on a full disk leaves zeros the size still covers): its sha256 is computed on
    the host before it takes its content-addressed name."""
    try:
        src = open(source, "rb")
    except OSError as exc:
        raise WorkbenchError(f"cannot read {source} to send it: {exc.strerror or exc}") from None
    with src, sftp.open(tmp, "wb") as dst:
        dst.set_pipelined(True)
        sent = _copy(src, dst, size)
    got = sftp.stat(tmp).st_size
    if got != size:
        raise _ShortWrite(f"it arrived with {got} of {size} bytes")
    if sent < size and sha256_there(tmp) != Path(target).name.partition("-")[0]:
        raise _ShortWrite("it arrived with other bytes than were sent")
    sftp.chmod(tmp, _on_host(mode))
    try:
        sftp.posix_rename(tmp, target)
    except OSError:
        try:  # a server without posix-rename@openssh.com
            sftp.rename(tmp, target)
        except OSError:
            _remove_quietly(sftp, tmp)
            sftp.stat(target)  # another send put it there first; else the error stands
    return sent


def _remove_quietly(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        sftp.remove(path)
    except (paramiko.SSHException, EOFError, OSError):
        pass


def remove_unreferenced_remote(conn: Connection, remote_root: str, keep: set[str]) -> tuple[int, int]:
    """On the host: removes the snapshots not in `keep`, staging folders and temporary objects older than an
    hour (left by killed sends), and the objects no snapshot links (link count 1). Returns (snapshots,
    objects) removed. Run it only while no send to this host is in progress: an object uploaded for a tree
    not yet built is unreferenced until then."""
    snapshots = posixpath.join(_remote_root(remote_root), "snapshots")
    status, out, err = _run(conn, ["sh", "-c", _GC, "sh", snapshots], f"removing unused snapshots in {snapshots}",
                            stdin="".join(f"{k}\n" for k in sorted(keep)).encode(), timeout=600)
    try:
        if status != 0:
            raise ValueError
        trees, objects = (int(n) for n in out.split())
    except ValueError:
        raise WorkbenchError(f"{conn.target.name}: cannot remove unused snapshots in {snapshots}: "
                             f"{_last_line(err)}") from None
    return trees, objects
