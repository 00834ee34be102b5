"""Bringing a session's files back: real project and session folders in tmp dirs, fetch copies from the session's
folder; what lands in the project (bytes, modes, links untouched) is read back from disk."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import pytest

from workbench.errors import WorkbenchError
from workbench.projects.session_sync import BroughtBack, plan_and_apply

SID = "3fa1b2c4"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def hashes(root: Path) -> dict[str, str]:
    """rel -> sha256 of every regular file under `root`, links neither listed nor followed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink() and path.is_file():
                out[path.relative_to(root).as_posix()] = sha(path.read_bytes())
    return out


class Session:
    """A project folder and a session's working copy, both starting from the same files."""

    def __init__(self, tmp_path: Path, files: dict[str, bytes]) -> None:
        self.project, self.work = tmp_path / "project", tmp_path / "work"
        for root in (self.project, self.work):
            root.mkdir()
            write(root, files)
        self.started = hashes(self.work)
        self.fetched: list[str] = []

    def fetch(self, rel: str, dest: Path) -> None:
        self.fetched.append(rel)
        shutil.copyfile(self.work / rel, dest)

    def bring_back(self, session_files: dict[str, str] | None = None) -> BroughtBack:
        return plan_and_apply(self.project, self.started, hashes(self.work) if session_files is None else session_files,
                              self.fetch, SID)


def test_new_and_changed_files_are_written_into_the_project_keeping_the_local_mode(tmp_path):
    s = Session(tmp_path, {"train.ipynb": b"{start}", "run.sh": b"echo 1\n", "same.py": b"x = 1\n"})
    (s.project / "run.sh").chmod(0o750)
    write(s.work, {"train.ipynb": b"{edited}", "run.sh": b"echo 2\n", "notes/day1/plot.png": b"\x89PNG\0\xff\x00"})

    brought = s.bring_back()

    assert (s.project / "train.ipynb").read_bytes() == b"{edited}"
    assert (s.project / "run.sh").read_bytes() == b"echo 2\n"
    assert (s.project / "run.sh").stat().st_mode & 0o777 == 0o750
    assert (s.project / "notes/day1/plot.png").read_bytes() == b"\x89PNG\0\xff\x00"
    assert brought == BroughtBack(["notes/day1/plot.png", "run.sh", "train.ipynb"], [], [], 1)
    assert brought.summary() == "brought back 3 files (notes/day1/plot.png, run.sh, train.ipynb)"
    assert sorted(os.listdir(s.project)) == ["notes", "run.sh", "same.py", "train.ipynb"]  # no temp file left


def test_a_file_changed_on_both_sides_is_kept_both_and_the_local_one_is_untouched(tmp_path):
    s = Session(tmp_path, {"a.py": b"start\n", "data/x.tar.gz": b"tar0", ".env": b"A=1\n"})
    write(s.work, {"a.py": b"session\n", "data/x.tar.gz": b"tar-session", ".env": b"A=2\n"})
    write(s.project, {"a.py": b"local\n", "data/x.tar.gz": b"tar-local", ".env": b"A=3\n"})

    brought = s.bring_back()

    assert (s.project / "a.py").read_bytes() == b"local\n"
    assert (s.project / f"a.session-{SID}.py").read_bytes() == b"session\n"
    assert (s.project / f"data/x.tar.session-{SID}.gz").read_bytes() == b"tar-session"
    assert (s.project / f".env.session-{SID}").read_bytes() == b"A=2\n"
    assert brought.copied == []
    assert brought.kept_both == [(".env", f".env.session-{SID}"), ("a.py", f"a.session-{SID}.py"),
                                 ("data/x.tar.gz", f"data/x.tar.session-{SID}.gz")]
    assert brought.summary().startswith(f"kept both: .env (session copy: .env.session-{SID}), a.py (session copy: ")


def test_the_kept_copy_never_overwrites_a_file_already_there(tmp_path):
    s = Session(tmp_path, {"a.py": b"start\n"})
    write(s.work, {"a.py": b"session\n"})
    write(s.project, {"a.py": b"local\n", f"a.session-{SID}.py": b"someone else's\n",
                      f"a.session-{SID}-2.py": b"another\n"})

    brought = s.bring_back()

    assert brought.kept_both == [("a.py", f"a.session-{SID}-3.py")]
    assert (s.project / f"a.session-{SID}.py").read_bytes() == b"someone else's\n"
    assert (s.project / f"a.session-{SID}-2.py").read_bytes() == b"another\n"
    assert (s.project / f"a.session-{SID}-3.py").read_bytes() == b"session\n"


def test_a_file_new_on_both_sides_with_different_content_is_kept_both(tmp_path):
    s = Session(tmp_path, {})
    write(s.work, {"new.py": b"from the session\n"})
    write(s.project, {"new.py": b"written here meanwhile\n"})

    assert s.bring_back().kept_both == [("new.py", f"new.session-{SID}.py")]
    assert (s.project / "new.py").read_bytes() == b"written here meanwhile\n"


def test_deleted_in_the_session_is_left_alone_and_deleted_locally_comes_back_only_if_the_session_changed_it(tmp_path):
    s = Session(tmp_path, {"gone.py": b"1\n", "edited.py": b"1\n", "untouched.py": b"1\n"})
    (s.work / "gone.py").unlink()
    write(s.work, {"edited.py": b"2\n"})
    (s.project / "edited.py").unlink()
    (s.project / "untouched.py").unlink()

    brought = s.bring_back()

    assert (s.project / "gone.py").read_bytes() == b"1\n"
    assert (s.project / "edited.py").read_bytes() == b"2\n"
    assert not (s.project / "untouched.py").exists()  # the user's deletion stands: the session did not touch it
    assert brought == BroughtBack(["edited.py"], [], ["gone.py"], 1)
    assert brought.summary() == "brought back 1 file (edited.py); deleted in the session, left here: gone.py"


def test_checkpoints_caches_and_the_session_home_are_never_brought_back(tmp_path):
    s = Session(tmp_path, {"train.ipynb": b"{}"})
    write(s.work, {".ipynb_checkpoints/train-checkpoint.ipynb": b"{}", "pkg/__pycache__/m.cpython-311.pyc": b"\0",
                   ".home/.bashrc": b"x", ".jupyter/lab/workspaces/w.json": b"{}", ".local/share/x": b"x",
                   ".cache/pip/y": b"y", ".ipython/profile_default/history.sqlite": b"z", ".git/HEAD": b"ref"})

    brought = s.bring_back()

    assert brought == BroughtBack([], [], [], 1)
    assert brought.summary() == "nothing changed"
    assert sorted(os.listdir(s.project)) == ["train.ipynb"]
    assert s.fetched == []


@pytest.mark.parametrize("rel", ["../outside.py", "/etc/passwd", "a/../../b", "a//b", "./a", ""])
def test_a_path_leaving_the_project_is_refused_and_the_other_files_still_come_back(tmp_path, rel):
    s = Session(tmp_path, {})
    write(s.work, {"fine.py": b"1\n"})

    brought = s.bring_back({"fine.py": sha(b"1\n"), rel: sha(b"evil")})

    assert brought.failed == [(rel, "not a path inside the project folder")]
    assert brought.copied == ["fine.py"]
    assert os.listdir(s.project) == ["fine.py"]
    assert not (tmp_path / "outside.py").exists()


def test_one_file_that_cannot_be_written_does_not_stop_the_others_and_a_retry_finishes(tmp_path):
    s = Session(tmp_path, {"a.py": b"a\n", "b.py": b"b\n", "z.py": b"z\n"})
    write(s.work, {"a.py": b"a2\n", "b.py": b"b2\n", "z.py": b"z2\n"})
    long_name = "n" * 300 + ".py"
    dropped = []

    def fetch_dropping_b_once(rel: str, dest: Path) -> None:
        if rel == "b.py" and not dropped:
            dropped.append(rel)
            raise WorkbenchError("gpu1: copying b.py: the connection dropped")
        s.fetch(rel, dest)

    first = plan_and_apply(s.project, s.started, {**hashes(s.work), long_name: sha(b"1\n")},
                           fetch_dropping_b_once, SID)

    assert first.copied == ["a.py", "z.py"]
    assert first.failed == [("b.py", "gpu1: copying b.py: the connection dropped"),
                            (long_name, "File name too long")]
    assert (s.project / "z.py").read_bytes() == b"z2\n" and (s.project / "b.py").read_bytes() == b"b\n"
    again = s.bring_back()
    assert again.copied == ["b.py"] and again.failed == [] and again.unchanged == 2
    assert (s.project / "b.py").read_bytes() == b"b2\n"
    assert sorted(os.listdir(s.project)) == ["a.py", "b.py", "z.py"]  # nothing kept twice, no temporary left


def test_what_the_listing_could_not_read_is_said_unreadable_not_deleted(tmp_path):
    s = Session(tmp_path, {"data/x.csv": b"1\n", "gone.py": b"g\n"})
    (s.work / "gone.py").unlink()
    shutil.rmtree(s.work / "data")

    brought = plan_and_apply(s.project, s.started, hashes(s.work), s.fetch, SID, unreadable=["data"])

    assert brought.deleted_in_session == ["gone.py"] and brought.unreadable == ["data"]
    assert "could not be read in the session's copy: data" in brought.summary()


def test_a_local_save_during_the_fetch_is_kept_and_the_session_copy_goes_beside_it(tmp_path):
    s = Session(tmp_path, {"train.py": b"v1\n"})
    write(s.work, {"train.py": b"session\n", "new.py": b"new\n"})

    def fetch_while_the_user_saves(rel: str, dest: Path) -> None:
        s.fetch(rel, dest)
        (s.project / rel).write_bytes(b"saved meanwhile\n")

    brought = plan_and_apply(s.project, s.started, hashes(s.work), fetch_while_the_user_saves, SID)

    assert (s.project / "train.py").read_bytes() == b"saved meanwhile\n"
    assert (s.project / f"train.session-{SID}.py").read_bytes() == b"session\n"
    assert (s.project / "new.py").read_bytes() == b"saved meanwhile\n"
    assert (s.project / f"new.session-{SID}.py").read_bytes() == b"new\n"
    assert brought.copied == [] and sorted(brought.kept_both) == [("new.py", f"new.session-{SID}.py"),
                                                                  ("train.py", f"train.session-{SID}.py")]
    assert not [n for n in os.listdir(s.project) if n.startswith(".wb-session")]


def test_a_fetch_that_writes_a_private_file_still_gives_the_users_modes(tmp_path):
    s = Session(tmp_path, {"run.sh": b"echo 1\n", "kept.py": b"k\n"})
    os.chmod(s.project / "kept.py", 0o640)
    write(s.work, {"run.sh": b"echo 2\n", "kept.py": b"k2\n", "new.py": b"n\n", "tool.sh": b"t\n"})
    (s.project / "run.sh").unlink()

    def private_fetch(rel: str, dest: Path) -> None:  # as SshHost.fetch: a mkstemp file renamed over dest
        tmp = dest.with_name(dest.name + ".x")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (s.work / rel).read_bytes())
        os.close(fd)
        os.replace(tmp, dest)

    old = os.umask(0o022)
    try:
        plan_and_apply(s.project, s.started, hashes(s.work), private_fetch, SID,
                       executable=frozenset({"run.sh", "tool.sh"}))
    finally:
        os.umask(old)

    modes = {name: (s.project / name).stat().st_mode & 0o777 for name in ("run.sh", "kept.py", "new.py", "tool.sh")}
    assert modes == {"run.sh": 0o755, "kept.py": 0o640, "new.py": 0o644, "tool.sh": 0o755}


def test_a_local_link_is_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"keep me\n")
    s = Session(tmp_path, {"cfg.yaml": b"a: 1\n"})
    (s.project / "cfg.yaml").unlink()
    (s.project / "cfg.yaml").symlink_to(outside / "secret")
    (s.project / "data").symlink_to(outside)
    write(s.work, {"cfg.yaml": b"a: 2\n", "data/secret": b"overwritten?\n", "data/more/new.bin": b"\1\2"})

    brought = s.bring_back()

    assert (outside / "secret").read_bytes() == b"keep me\n"
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (s.project / "cfg.yaml").is_symlink() and (s.project / "data").is_symlink()
    assert (s.project / f"cfg.session-{SID}.yaml").read_bytes() == b"a: 2\n"
    assert (s.project / f"data.session-{SID}/secret").read_bytes() == b"overwritten?\n"
    assert (s.project / f"data.session-{SID}/more/new.bin").read_bytes() == b"\1\2"
    assert brought.kept_both == [("cfg.yaml", f"cfg.session-{SID}.yaml"),
                                 ("data/more/new.bin", f"data.session-{SID}/more/new.bin"),
                                 ("data/secret", f"data.session-{SID}/secret")]


def test_a_local_file_where_the_session_has_a_folder_is_kept_both(tmp_path):
    s = Session(tmp_path, {})
    write(s.project, {"out": b"a file here\n"})
    write(s.work, {"out/result.csv": b"1,2\n"})

    brought = s.bring_back()

    assert (s.project / "out").read_bytes() == b"a file here\n"
    assert brought.kept_both == [("out/result.csv", f"out.session-{SID}/result.csv")]


def test_a_second_call_after_applying_has_nothing_to_do(tmp_path):
    s = Session(tmp_path, {"a.py": b"1\n", "b.py": b"1\n", "gone.py": b"1\n"})
    write(s.work, {"a.py": b"2\n", "b.py": b"session\n", "new/c.py": b"3\n"})
    (s.work / "gone.py").unlink()
    write(s.project, {"b.py": b"local\n"})
    s.bring_back()
    before = hashes(s.project)
    s.fetched.clear()

    again = s.bring_back()

    assert again.copied == [] and again.kept_both == []
    assert again.unchanged == 3
    assert hashes(s.project) == before
    assert s.fetched == []


def test_binary_content_with_holes_and_every_byte_comes_back_exactly(tmp_path):
    s = Session(tmp_path, {"weights.bin": b"\0" * 10})
    data = bytes(range(256)) * 64 + b"\0" * 100_000 + b"\xff"
    write(s.work, {"weights.bin": data})

    assert s.bring_back().copied == ["weights.bin"]
    assert (s.project / "weights.bin").read_bytes() == data


def test_a_fetch_that_delivers_other_bytes_writes_nothing(tmp_path):
    s = Session(tmp_path, {"a.py": b"1\n"})
    write(s.work, {"a.py": b"2\n"})

    brought = plan_and_apply(s.project, s.started, hashes(s.work), lambda rel, dest: dest.write_bytes(b"truncated"),
                             SID)

    assert [rel for rel, _ in brought.failed] == ["a.py"]
    assert brought.failed[0][1].startswith("it arrived from the session with other content")

    assert (s.project / "a.py").read_bytes() == b"1\n"
    assert os.listdir(s.project) == ["a.py"]


def _as_nobody(work: Callable[[], object]) -> object:
    """`work`'s answer, worked out in a child process that runs as `nobody` when this one is root (root writes
    into any folder: the refusal a user meets needs a user)."""
    if os.geteuid() != 0:
        return work()
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, answer through the pipe, never return into pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, repr(work()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read) as answer:
        said = answer.read()
    os.waitpid(pid, 0)
    return said


def test_a_project_folder_that_cannot_be_written_names_the_file_and_why():
    base = Path(tempfile.mkdtemp(prefix="wb-session-sync-"))  # under /tmp, so that nobody reaches it too
    try:
        base.chmod(0o755)
        s = Session(base, {"a.py": b"1\n"})
        write(s.work, {"a.py": b"2\n"})
        for folder in (s.work, s.project):
            folder.chmod(0o755)
        s.project.chmod(0o555)
        failed = _as_nobody(lambda: s.bring_back().failed)
        assert failed in ([("a.py", "Permission denied")], repr([("a.py", "Permission denied")])), failed
        assert (s.project / "a.py").read_bytes() == b"1\n"
    finally:
        (base / "project").chmod(0o755)
        shutil.rmtree(base)


def test_a_project_folder_that_is_gone_is_one_clear_error(tmp_path):
    s = Session(tmp_path, {"a.py": b"1\n"})
    write(s.work, {"a.py": b"2\n"})
    shutil.rmtree(s.project)

    with pytest.raises(WorkbenchError, match=r"cannot open the project folder .*project to bring the session's "
                                             r"files back: No such file or directory"):
        s.bring_back()


def test_a_file_the_local_filesystem_cannot_hold_is_named_with_the_reason(tmp_path):
    s = Session(tmp_path, {})
    long_name = "n" * 300 + ".py"

    assert s.bring_back({long_name: sha(b"1\n")}).failures() == f"{long_name} (File name too long)"


def test_a_project_folder_reached_through_a_link_is_written_into(tmp_path):
    s = Session(tmp_path, {"a.py": b"1\n"})
    write(s.work, {"a.py": b"2\n"})
    (tmp_path / "via-link").symlink_to(s.project)

    assert plan_and_apply(tmp_path / "via-link", s.started, hashes(s.work), s.fetch, SID).copied == ["a.py"]
    assert (s.project / "a.py").read_bytes() == b"2\n"
