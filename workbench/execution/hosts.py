"""Where a run's files live: this workstation, or an SSH host reached over its persistent connection.

An executor reads a run's metrics and output files through its host, from byte offsets, and lists and hashes
the output files where they are (a remote run's checkpoints are never copied just to be hashed). Only what
the spec declares as artifacts is copied to the workstation's mirror of the run dir; the rest stays listed.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import secrets
import shutil
import stat
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from workbench.errors import WorkbenchError
from workbench.execution.base import Chunk
from workbench.execution.offsets import read_file_from, read_open_file
from workbench.execution.scripts import q

if TYPE_CHECKING:
    import paramiko

    from workbench.machines.ssh import Connection

ARTIFACT_CHUNK = 1 << 20
SFTP_TIMEOUT = 60.0  # seconds one SFTP read may wait for its answer
HASH_BATCH = 500  # files hashed per remote command
FULL_BELOW = 1 << 20  # a host dir with less free than this is full (a run's write just failed there)
SKIPPED = "metrics.jsonl"  # the run's metrics file: ingested, not an output (never hashed: it can be large)
Listed = tuple[str, int, str, str | None]  # (relative path, size, sha256, link target or None)
# What Workbench writes on a host is the login user's alone, whatever the login's umask (a cluster's shared
# file system is read by every user of it): dirs 0700, files 0600, snapshot files 0400 (0500 executable).
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
PRIVATE_UMASK = "umask 077\n"
KEEP_LOGIN_UMASK = "wb_umask=$(umask)\n"  # a fork: only for the scripts that start an experiment


def _one_at_a_time(method: Any) -> Any:
    """paramiko's SFTPClient is not safe for requests from several threads at once (one thread may read
    another's reply and both wait forever): a host's SFTP work is done one operation at a time."""
    import functools

    @functools.wraps(method)
    def serialized(self: "SshHost", *args: Any, **kwargs: Any) -> Any:
        with self.io_lock:
            return method(self, *args, **kwargs)
    return serialized


def text_name(name: str) -> str:
    """A file name as text SQLite can store (names that are not UTF-8 keep their bytes as escapes)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


class LocalHost:
    """This workstation: run dirs under the data dir's runs/, which are also their own mirrors."""
    name = "local"
    remote = False

    def __init__(self, runs_root: Path | None) -> None:
        self.runs_root = runs_root

    def run_dir(self, run_id: str) -> str:
        assert self.runs_root is not None
        return str(self.runs_root / run_id)

    def make_dirs(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def read_from(self, path: str, offset: str, limit: int, eof: bool) -> Chunk:
        return read_file_from(Path(path), offset, limit, eof)

    def tail(self, path: str, size: int) -> tuple[int, bytes] | None:
        """(modification time in ns, the last `size` bytes) of a file, or None when it cannot be read."""
        try:
            with open(path, "rb") as fh:
                info = os.fstat(fh.fileno())
                fh.seek(max(0, info.st_size - size))
                return info.st_mtime_ns, fh.read()
        except OSError:
            return None

    def list_outputs(self, out: str, skipped: list[str] | None = None, *, whole: bool = False) -> list[Listed]:
        """Every regular file under `out` with its size and sha256; a symbolic link as a link (its target,
        never followed: an experiment can point one at any host file); anything else is skipped. `whole`
        (a session's working copy): a top-level metrics.jsonl is listed too, and what could not be read is
        named in `skipped`."""
        found: list[Listed] = []
        # fwalk opens each dir relative to its parent's fd and never follows links, so nothing an experiment
        # renames or relinks while we walk can lead outside the output dir.
        for root, dirs, files, root_fd in os.fwalk(out, follow_symlinks=False):
            for name in dirs + files:
                rel = Path(root, name).relative_to(out).as_posix()
                try:
                    info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
                    if stat.S_ISLNK(info.st_mode):
                        found.append((text_name(rel), 0, "", text_name(os.readlink(name, dir_fd=root_fd))))
                    elif stat.S_ISREG(info.st_mode) and (whole or rel != SKIPPED):
                        found.append((text_name(rel), *_hash_file(name, root_fd), None))
                except FileNotFoundError:
                    continue  # gone meanwhile
                except OSError:
                    if whole and skipped is not None:
                        skipped.append(text_name(rel))
                    continue  # unreadable, or no longer a regular file
        return found

    def fetch(self, path: str, dest: Path) -> int:
        """Copies a regular file to `dest` (nothing to do when it is `dest` already); bytes copied."""
        if os.path.abspath(path) == os.path.abspath(dest):
            return 0
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest, follow_symlinks=False)
        return dest.stat().st_size

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def copy_tree(self, src: str, dest: str) -> None:
        """A writable copy of `src` (a snapshot, whose files are read-only) at `dest`, links kept as links."""
        try:
            shutil.copytree(src, dest, symlinks=True)
            for root, dirs, files in os.walk(dest):
                for name in [*dirs, *files]:
                    path = os.path.join(root, name)
                    info = os.lstat(path)
                    if not stat.S_ISLNK(info.st_mode):
                        os.chmod(path, stat.S_IMODE(info.st_mode) | stat.S_IWUSR)
            os.chmod(dest, stat.S_IMODE(os.stat(dest).st_mode) | stat.S_IWUSR)
        except OSError as err:
            raise WorkbenchError(f"cannot copy {src} to {dest}: {err.strerror or err}") from None

    def remove_files(self, paths: Iterable[str]) -> None:
        for path in paths:
            Path(path).unlink(missing_ok=True)

    def user(self) -> str:
        return f"{os.getuid()}:{os.getgid()}"


def _hash_file(name: str, dir_fd: int) -> tuple[int, str]:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{name} is no longer a regular file")
        digest, size = hashlib.sha256(), 0
        while block := fh.read(ARTIFACT_CHUNK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


class SshHost:
    """An SSH host: files read over SFTP on the host's persistent connection, commands run in its shell.
    `root` is the Workbench dir there (snapshots/, runs/)."""
    remote = True

    def __init__(self, connection: "Connection", root: str | None = None, *, known: dict[str, str] | None = None,
                 remember: "Callable[[dict[str, str]], None] | None" = None, instance: str = "") -> None:
        self.connection = connection
        self.name = connection.target.name
        self._root = root
        # one Workbench dir per workstation data dir: each one's gc frees only what it does not reference
        self._default_root = f"~/.workbench/{instance}" if instance else "~/.workbench"
        self._remember = remember  # keeps what `_learn` found (the machine's record), so later runs skip it
        self._sftp: "paramiko.SFTPClient | None" = None
        self._sftp_transport: Any = None
        self._lock = threading.Lock()
        self.io_lock = threading.RLock()  # held around every SFTP operation (see _one_at_a_time)
        self._user: str | None = None
        self._tightened = False  # the Workbench dir's own folders made 0700 (once per process)
        if known and known.get("root") and known.get("user") and (root is None or known.get("configured") == root):
            self._root, self._user = known["root"], known["user"]

    # plumbing -------------------------------------------------------------------------------------
    def sftp(self) -> "paramiko.SFTPClient":
        import paramiko

        from workbench.machines.ssh import SSHError

        with self._lock:
            transport = self.connection.transport()
            if self._sftp is None or self._sftp_transport is not transport:
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    self.connection.close_transport()
                    raise SSHError(f"{self.name}: cannot open an SFTP session: {exc or type(exc).__name__}") from None
                # the liveness check closes a silent host's transport, which ends every read; a read that still
                # hangs (a peer that acknowledges but never answers) ends here
                self._sftp.get_channel().settimeout(SFTP_TIMEOUT)
                self._sftp_transport = transport
            assert self._sftp is not None
            return self._sftp

    def failure(self, what: str, exc: BaseException, path: str | None = None) -> WorkbenchError:
        """An SFTP error as one line naming the host; a broken connection is dropped, so the next call
        reconnects. SFTP (protocol 3) says only "Failure" for a full or read-only disk: where `path` is given,
        the host is asked why (`why_unwritable`)."""
        import paramiko

        from workbench.machines.ssh import SSHError

        if isinstance(exc, (EOFError, paramiko.SSHException, ConnectionError, TimeoutError)) or \
                not self.connection.connected:
            self.connection.close_transport()
            self._sftp = None
            dropped = self.connection.dropped()
            return SSHError(f"{self.name}: the connection dropped while {what}" + (f" ({dropped})" if dropped else ""))
        if isinstance(exc, OSError) and "No space left" in str(exc):
            return self.no_space(what)
        if isinstance(exc, OSError) and path is not None and str(exc) == "Failure":
            why = self.why_unwritable(path)
            if why is not None:
                return self.no_space(what) if "No space left" in why else WorkbenchError(f"{self.name}: {what} "
                                                                                         f"failed: {why}")
        return WorkbenchError(f"{self.name}: {what} failed: {exc}")

    def no_space(self, what: str) -> WorkbenchError:
        return WorkbenchError(f"no space left on {self.name} under {self.root} ({what})",
                              hint=f"free space on {self.name}, or run `workbench gc`")

    def why_unwritable(self, path: str) -> str | None:
        """Why a dir and a file cannot be made at `path` (or in its nearest existing parent) on the host, in
        the system's words with the dir it tried ("/x/runs: Read-only file system"); None when both can.
        One command, which leaves nothing behind."""
        script = f"""p={q(path)}
while [ ! -d "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done
t="$p/.wb-probe-$$"
if ! err=$(mkdir "$t" 2>&1 && dd if=/dev/zero of="$t/f" bs=1 count=1 2>&1); then
  rm -rf "$t" 2>/dev/null
  printf '%s\\n%s\\n' "$p" "$err"
  exit 0
fi
rm -rf "$t"
"""
        try:  # not through sh(), which asks this when a command fails with an I/O error
            status, out, _ = self.connection.run(["sh", "-s"], timeout=20, stdin=script.encode())
        except WorkbenchError:
            return None
        lines = [line for line in out.decode(errors="replace").splitlines() if line.strip()]
        if status != 0 or len(lines) < 2:
            return None
        return f"{lines[0]}: {lines[1].rpartition(': ')[2] or lines[1]}"  # "dd: error writing 'f': No space ..."

    def full_disk_reason(self, run_dir: str) -> str | None:
        """Why a run that failed (or left no exit record) on this host ended, when a full disk is why: the
        dir it writes in has no room left now, or its stderr ends saying "No space left on device" (a run
        that freed its files as it failed). None otherwise."""
        found = self.tail(posixpath.join(run_dir, "stderr.log"), 8192)
        said = " (the run's stderr says so)" if found is not None and b"No space left on device" in found[1] else ""
        available = free_bytes(self.connection, run_dir)
        if available is not None and available < FULL_BELOW:
            return f"no space left on {self.name} under {self.root}{said}"
        if said:  # another file system filled, or the run freed space as it failed
            now = f"has {available >> 20} MiB free now" if available is not None else "has an unknown amount free"
            return f"no space left on device on {self.name}{said}; {self.root} {now}"
        return None

    def sh(self, script: str, timeout: float = 60.0, what: str = "a command", login_umask: bool = False) -> bytes:
        """Runs a POSIX sh script on the host (sent on stdin); its stdout, or a one-line error. Whatever the
        login's umask, what the script creates is the user's alone (dirs 0700, files 0600); with
        `login_umask`, the login's own umask is kept in $wb_umask, for the experiment a launch starts."""
        prefix = (KEEP_LOGIN_UMASK if login_umask else "") + PRIVATE_UMASK
        status, out, err = self.connection.run(["sh", "-s"], timeout=timeout, stdin=(prefix + script).encode())
        if status != 0:
            detail = err.decode(errors="replace").strip().splitlines()
            message = detail[-1][:200] if detail else f"exit status {status}"
            # sh's printf says "I/O error" for a full disk: the host is asked
            if "No space left" in message or ("I/O error" in message and
                                              "No space left" in (self.why_unwritable(self.root) or "")):
                raise self.no_space(f"{what}: {message}")
            raise WorkbenchError(f"{self.name}: {what} failed: {message}")
        return out

    # layout ---------------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> str:
        return posixpath.join(self.root, "runs", run_id)

    @_one_at_a_time
    def make_dirs(self, path: str) -> None:
        """mkdir -p over SFTP (no command started on the host: a launch runs as few as it can); each dir it
        makes is 0700."""
        sftp = self.sftp()
        self._tighten(sftp)
        missing: list[str] = []
        current = path.rstrip("/")
        while current and current != "/":
            try:
                sftp.stat(current)
                break
            except FileNotFoundError:
                missing.append(current)
                current = posixpath.dirname(current)
            except Exception as exc:  # noqa: BLE001
                raise self.failure(f"creating {path}", exc) from None
        for folder in reversed(missing):
            try:
                sftp.mkdir(folder, PRIVATE_DIR)
            except OSError as exc:
                try:
                    if stat.S_ISDIR(sftp.stat(folder).st_mode or 0):
                        continue  # made meanwhile by another launch
                except OSError:
                    pass
                raise self.failure(f"creating {folder}", exc, folder) from None
            except Exception as exc:  # noqa: BLE001
                raise self.failure(f"creating {folder}", exc) from None

    def _tighten(self, sftp: "paramiko.SFTPClient") -> None:
        """The folders Workbench keeps under its dir there (runs, models, snapshots) are 0700, also on a host
        used by an older Workbench that made them 0755 (its run dirs may hold scripts with a run's
        environment in clear): once per process, before anything is made there."""
        if self._tightened:
            return
        self._tightened = True
        for folder in ("runs", "models", "snapshots"):
            try:
                sftp.chmod(posixpath.join(self.root, folder), PRIVATE_DIR)
            except (OSError, EOFError):
                pass  # not there yet (made 0700 when it is), or not ours to change

    @property
    def root(self) -> str:
        """The Workbench dir on the host: as configured for the machine (absolute, or under ~), else
        ~/.workbench/<instance> of the login user. Learnt with the user's uid:gid in one command, once."""
        if self._root is None or self._root.startswith("~") or self._user is None:
            self._learn()
        assert self._root is not None
        return self._root

    def user(self) -> str:
        """The login user's uid:gid on the host: what runs there use, so their files are the user's."""
        if self._user is None:
            self._learn()
        assert self._user is not None
        return self._user

    def _learn(self) -> None:
        lines = self.sh('printf "%s\\n%s:%s\\n" "$HOME" "$(id -u)" "$(id -g)"',
                        what="reading the login user's home and ids").decode().splitlines()
        home, ids = (lines + ["", ""])[:2]
        configured = self._root or self._default_root
        if configured.startswith("~"):
            if not home.startswith("/"):
                raise WorkbenchError(f"{self.name}: cannot tell the login user's home directory",
                                     hint="set the machine's Workbench dir: `workbench machines add NAME --dir PATH`")
            configured = home.rstrip("/") + configured[1:]
        learnt = {"configured": self._root or "", "root": configured.rstrip("/") or "/", "user": ids.strip()}
        self._root, self._user = learnt["root"], learnt["user"]
        if self._remember is not None:
            self._remember(learnt)

    @_one_at_a_time
    def is_dir(self, path: str) -> bool:
        """Over SFTP (no command started on the host)."""
        try:
            return stat.S_ISDIR(self.sftp().stat(path).st_mode or 0)
        except FileNotFoundError:
            return False
        except Exception as exc:  # noqa: BLE001
            raise self.failure(f"looking for {posixpath.basename(path)}", exc) from None

    # reading --------------------------------------------------------------------------------------
    @_one_at_a_time
    def read_from(self, path: str, offset: str, limit: int, eof: bool) -> Chunk:
        """`read_file_from` over SFTP: never through a link, only a regular file, from the same offsets."""
        sftp = self.sftp()
        name = posixpath.basename(path)
        try:
            info = sftp.lstat(path)
        except FileNotFoundError:
            return Chunk(b"", offset, eof)
        except (OSError, EOFError, Exception) as exc:  # noqa: BLE001 - paramiko raises several kinds
            raise self.failure(f"reading {name}", exc) from None
        mode = info.st_mode or 0
        if stat.S_ISLNK(mode):
            return Chunk(b"", offset, eof, refused=f"{name} is a symbolic link; not followed")
        if not stat.S_ISREG(mode):
            return Chunk(b"", offset, eof, refused=f"{name} is not a regular file; not read")
        try:
            with sftp.open(path, "rb") as fh:
                position = int((offset or "0").split(":", 1)[0])
                if 0 < position <= (info.st_size or 0):
                    fh.seek(max(0, position - 64))
                # bounded: a rewritten (shorter) file is read again from its start, a chunk at a time
                start = position if position <= (info.st_size or 0) else 0
                fh.prefetch(min(info.st_size or 0, start + limit + 64))
                return read_open_file(fh, info.st_size or 0, offset, limit, eof)
        except FileNotFoundError:
            return Chunk(b"", offset, eof)
        except Exception as exc:  # noqa: BLE001
            raise self.failure(f"reading {name}", exc) from None

    @_one_at_a_time
    def read_range(self, path: str, start: int, limit: int) -> bytes:
        """Up to `limit` bytes of a regular file from `start` (b"" when it is missing, shorter, or not a
        regular file: a link is never followed)."""
        sftp = self.sftp()
        try:
            info = sftp.lstat(path)
            if not stat.S_ISREG(info.st_mode or 0) or (info.st_size or 0) <= start:
                return b""
            end = min(info.st_size or 0, start + limit)
            with sftp.open(path, "rb") as fh:
                fh.seek(start)
                fh.prefetch(end)
                return fh.read(end - start)
        except FileNotFoundError:
            return b""
        except Exception as exc:  # noqa: BLE001 - paramiko raises several kinds
            raise self.failure(f"reading {posixpath.basename(path)}", exc) from None

    @_one_at_a_time
    def tail(self, path: str, size: int) -> tuple[int, bytes] | None:
        sftp = self.sftp()
        try:
            info = sftp.lstat(path)
            if not stat.S_ISREG(info.st_mode or 0):
                return None
            with sftp.open(path, "rb") as fh:
                fh.seek(max(0, (info.st_size or 0) - size))
                return int(info.st_mtime or 0) * 1_000_000_000, fh.read(size)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise self.failure(f"reading {posixpath.basename(path)}", exc) from None

    def read_small(self, path: str, limit: int = 1 << 16) -> bytes | None:
        """A small file's bytes (a pid or exit-code file), None when it does not exist."""
        found = self.tail(path, limit)
        return None if found is None else found[1]

    @_one_at_a_time
    def list_outputs(self, out: str, skipped: list[str] | None = None, *, whole: bool = False) -> list[Listed]:
        """The output dir walked over SFTP (attributes of entries, never following links), each regular
        file hashed on the host with sha256sum, a batch of files per command. A dir that cannot be read, or
        whose names are not UTF-8, is left out and named in `skipped` (never a reason to fail the run).
        `whole` (a session's working copy): a top-level metrics.jsonl is listed too, and a file that could
        not be hashed is named in `skipped`."""
        sftp = self.sftp()
        files: list[tuple[str, int]] = []
        links: list[Listed] = []
        pending = [""]
        skipped = [] if skipped is None else skipped
        try:
            while pending:
                rel_dir = pending.pop()
                try:
                    entries = sftp.listdir_attr(posixpath.join(out, rel_dir) if rel_dir else out)
                except FileNotFoundError:
                    continue
                except (PermissionError, UnicodeDecodeError):
                    skipped.append(text_name(rel_dir) or ".")
                    continue
                for entry in entries:
                    rel = posixpath.join(rel_dir, entry.filename) if rel_dir else entry.filename
                    mode = entry.st_mode or 0
                    if stat.S_ISDIR(mode):
                        pending.append(rel)
                    elif stat.S_ISLNK(mode):
                        links.append((text_name(rel), 0, "", text_name(sftp.readlink(posixpath.join(out, rel)) or "")))
                    elif stat.S_ISREG(mode) and (whole or rel != SKIPPED):
                        files.append((rel, entry.st_size or 0))
        except Exception as exc:  # noqa: BLE001
            raise self.failure("listing the run's output files", exc) from None
        found = list(links)
        for start in range(0, len(files), HASH_BATCH):
            batch = files[start:start + HASH_BATCH]
            script = "".join(f"sha256sum 2>/dev/null < {q(posixpath.join(out, rel))} || "
                             f"{{ test -e {q(posixpath.join(out, rel))} && echo + || echo -; }}\n"
                             for rel, _ in batch)
            digests = self.sh(script, timeout=600, what="hashing the run's output files").decode().split("\n")
            for (rel, size), line in zip(batch, digests):
                digest = line.split(" ", 1)[0]
                if len(digest) == 64:
                    found.append((text_name(rel), size, digest, None))
                elif whole and digest == "+":  # there, but unreadable ("-": gone meanwhile)
                    skipped.append(text_name(rel))
        return found

    @_one_at_a_time
    def fetch(self, path: str, dest: Path) -> int:
        """Copies a regular file from the host to `dest` (atomically); bytes copied."""
        sftp = self.sftp()
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                info = sftp.lstat(path)
                if not stat.S_ISREG(info.st_mode or 0):
                    raise WorkbenchError(f"{self.name}: {path} is not a regular file; not copied")
                sftp.getfo(path, out)
            os.replace(tmp, dest)
        except WorkbenchError:
            Path(tmp).unlink(missing_ok=True)
            raise
        except Exception as exc:  # noqa: BLE001
            Path(tmp).unlink(missing_ok=True)
            raise self.failure(f"copying {posixpath.basename(path)}", exc) from None
        return dest.stat().st_size

    @_one_at_a_time
    def put_tree(self, path: str, files: dict[str, bytes]) -> None:
        """Writes a folder of files that never changes once written (its name is its content's key): into a
        temporary folder beside it, then renamed into place, so a reader never sees it half written and a
        launch racing this one keeps whichever landed first. 0700 and 0600, as everything Workbench keeps there
        (its runs use the login user's uid)."""
        sftp = self.sftp()
        # pid and thread tell this workstation's launches apart, the random part two workstations'
        tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}"
        try:
            sftp.mkdir(tmp, PRIVATE_DIR)
            sftp.chmod(tmp, PRIVATE_DIR)  # the server's umask (sftp-server -u, the login's) applies to mkdir's mode
            for name, data in files.items():
                with sftp.open(posixpath.join(tmp, name), "wb") as fh:
                    fh.chmod(PRIVATE_FILE)
                    fh.write(data)
            try:
                sftp.posix_rename(tmp, path)
                return
            except OSError:
                if not stat.S_ISDIR(sftp.stat(path).st_mode or 0):
                    raise
            for name in files:  # another launch put it there first
                sftp.remove(posixpath.join(tmp, name))
            sftp.rmdir(tmp)
        except Exception as exc:  # noqa: BLE001
            raise self.failure(f"writing {posixpath.basename(path)}", exc, posixpath.dirname(path)) from None

    def remove_tree(self, path: str) -> None:
        if not path.startswith(self.root.rstrip("/") + "/"):
            raise WorkbenchError(f"{self.name}: refusing to remove {path}, outside {self.root}")
        self.sh(f"chmod -R u+w {q(path)} 2>/dev/null; rm -rf {q(path)}", what=f"removing {path}")

    def copy_tree(self, src: str, dest: str) -> None:
        """A writable copy of `src` (a snapshot, whose files are read-only) at `dest` on the host."""
        self.sh(f"cp -R -P {q(src)} {q(dest)} && chmod -R u+w {q(dest)}", timeout=600, what=f"copying {src}")

    def remove_files(self, paths: Iterable[str]) -> None:
        listed = " ".join(q(p) for p in paths)
        if listed:
            self.sh(f"rm -f {listed}", what="removing files")

    def close(self) -> None:
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            try:
                sftp.close()
            except Exception:  # noqa: BLE001
                pass


def free_bytes(connection: "Connection", path: str) -> int | None:
    """Bytes free to the login user under `path` on the host (df), None when df cannot tell."""
    try:
        status, out, _ = connection.run(["df", "-Pk", "--", path], timeout=20)
    except WorkbenchError:
        return None
    fields = (out.decode("utf-8", "replace").splitlines()[1:] or [""])[-1].split()
    return int(fields[3]) * 1024 if status == 0 and len(fields) >= 4 and fields[3].isdigit() else None


# The file's sha256 where it is (coreutils or BSD tools); nothing when there is no file.
_SHA256 = 'if [ -f "$1" ]; then sha256sum -- "$1" 2>/dev/null || shasum -a 256 -- "$1"; fi'


def sha256_on_host(connection: "Connection", path: str, size: int) -> str | None:
    """sha256 of `path` computed on the host (the file is not read back), None when there is no file there."""
    status, out, err = connection.run(["sh", "-c", _SHA256, "sh", path], timeout=60 + size / 50e6)
    text = out.decode("utf-8", "replace").split()
    if status != 0 or (text and len(text[0]) != 64):
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise WorkbenchError(f"{connection.target.name}: cannot compute the sha256 of {path} there: "
                             f"{detail[-1] if detail else f'exit status {status}'}",
                             hint="the host needs sha256sum (coreutils) or shasum")
    return text[0].lower() if text else None

