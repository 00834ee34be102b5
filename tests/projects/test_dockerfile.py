"""The build-input key of a Dockerfile project (issue 22 item 10), read as the classic builder reads it: what
its COPY/ADD lines take from the context docker-py sends (less .dockerignore's), links followed as Docker
follows them. Same key, same build; a file the image holds that changed gives a new key. No engine needed:
tests/execution/test_build_inputs.py runs the same against the real one."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from workbench.projects.dockerfile import build_inputs_key, copied_sources, dockerignored, instructions
from workbench.projects.snapshot import snapshot_manifest, take_snapshot


def _entries(*paths: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(kind="f", rel=p, mode=0o444, data=f"sha-of-{p}") for p in paths]


def test_what_a_dockerfile_copies_and_what_dockerignore_leaves_out():
    assert copied_sources('COPY --chown=1:1 ["a b.txt", "src/*.py", "/dst/"]\nADD https://x.org/f /f\n'
                          "COPY --from=builder /out /out\nCOPY ./lib/ /lib\n") == ["a b.txt", "src/*.py", "lib"]
    assert copied_sources("COPY . /app\n") == ["."]
    assert copied_sources("ARG D=src\nCOPY $D /app\n") == ["."]  # a variable: the whole context, never a guess
    ignored = dockerignored("# notes\ndata/\n**/*.ckpt\n!data/keep.csv\n")
    assert ignored("data/a.csv") and ignored("models/x/best.ckpt") and ignored("best.ckpt")
    assert not ignored("data/keep.csv")
    assert copied_sources("COPY src/[ab].py /app/\n") == ["."]  # a class: the whole context, never a guess
    assert not ignored("src/train.py")
    files = _entries("Dockerfile", "src/a.py", "src/sub/b.py", "train.py", "data/big.bin")
    key = build_inputs_key("Dockerfile", "FROM x\nCOPY src/*.py /app/\n", "", files)
    edited = [*files[:3], SimpleNamespace(kind="f", rel="train.py", mode=0o444, data="new"), files[4]]
    assert build_inputs_key("Dockerfile", "FROM x\nCOPY src/*.py /app/\n", "", edited) == key  # not copied
    moved = [files[0], SimpleNamespace(kind="f", rel="src/a.py", mode=0o444, data="new"), *files[2:]]
    assert build_inputs_key("Dockerfile", "FROM x\nCOPY src/*.py /app/\n", "", moved) != key
    two = "FROM x\nCOPY src train.py /app/\n"  # every source covers what is below it
    assert build_inputs_key("Dockerfile", two, "", moved) != build_inputs_key("Dockerfile", two, "", files)
    whole = build_inputs_key("Dockerfile", "FROM x\nCOPY . /app\n", "data/\n", files)
    bigger = [*files[:4], SimpleNamespace(kind="f", rel="data/big.bin", mode=0o444, data="new")]
    assert build_inputs_key("Dockerfile", "FROM x\nCOPY . /app\n", "data/\n", bigger) == whole  # ignored
    assert build_inputs_key("Dockerfile", "FROM x\nCOPY . /app\n", "", bigger) != \
        build_inputs_key("Dockerfile", "FROM x\nCOPY . /app\n", "", files)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _key(root: Path, store: Path) -> str:
    """The key of `root` as a launch takes it: from the snapshot's manifest, the Dockerfile and .dockerignore
    read from the snapshot."""
    snapshot = take_snapshot(root, [], store)
    ignore = snapshot.path / ".dockerignore"
    return build_inputs_key("Dockerfile", (snapshot.path / "Dockerfile").read_text(),
                            ignore.read_text() if ignore.exists() else "", snapshot_manifest(store, snapshot.hash))


def _changes_key(tmp_path: Path, files: dict[str, str], edit: str, links: dict[str, str] | None = None) -> bool:
    """Whether editing the file `edit` (inside a project of `files` and `links`) gives a new key."""
    root, store = tmp_path / "project", tmp_path / "snapshots"
    _write(root, files)
    for link, target in (links or {}).items():
        os.symlink(target, root / link)
    before = _key(root, store)
    (root / edit).write_text((root / edit).read_text() + "# edited\n")
    return _key(root, store) != before


def test_a_copied_link_keys_what_it_points_at(tmp_path):
    # Docker follows a link named as a COPY source: `COPY lib /app/lib` copies vendor/lib's files
    assert _changes_key(tmp_path / "dir", {"Dockerfile": "FROM x\nCOPY lib /app/lib\n", "vendor/lib/util.py": "",
                                           "train.py": ""}, "vendor/lib/util.py", links={"lib": "vendor/lib"})
    # ... and a file link: `COPY cfg.yaml /app/` copies real.cfg's content
    assert _changes_key(tmp_path / "file", {"Dockerfile": "FROM x\nCOPY cfg.yaml /app/\n", "real.cfg": "a: 1\n"},
                        "real.cfg", links={"cfg.yaml": "real.cfg"})
    # a path through a linked folder, and a wildcard that matches a link
    assert _changes_key(tmp_path / "through", {"Dockerfile": "FROM x\nCOPY lib/util.py /app/\n",
                                               "vendor/lib/util.py": ""}, "vendor/lib/util.py",
                        links={"lib": "vendor/lib"})
    assert _changes_key(tmp_path / "glob", {"Dockerfile": "FROM x\nCOPY conf/*.yaml /app/\n", "common/base.yaml": "",
                                            "conf/own.yaml": ""}, "common/base.yaml",
                        links={"conf/base.yaml": "../common/base.yaml"})
    # what the image does not hold still keeps the key
    assert not _changes_key(tmp_path / "code", {"Dockerfile": "FROM x\nCOPY lib /app/lib\n", "vendor/lib/util.py": "",
                                                "train.py": ""}, "train.py", links={"lib": "vendor/lib"})


def test_links_that_loop_key_the_whole_context():
    links = [SimpleNamespace(kind="l", rel="a", mode=0, data="b"), SimpleNamespace(kind="l", rel="b", mode=0, data="a")]
    files = _entries("Dockerfile", "train.py")
    edited = [files[0], SimpleNamespace(kind="f", rel="train.py", mode=0o444, data="new")]
    text = "FROM x\nCOPY a /app/\n"
    assert build_inputs_key("Dockerfile", text, "", [*links, *files]) != \
        build_inputs_key("Dockerfile", text, "", [*links, *edited])


def test_a_blank_line_inside_a_continuation_does_not_end_the_instruction():
    text = "FROM x\nCOPY a.txt \\\n\nb.txt /app/x/\nRUN true\n"
    assert instructions(text) == [("FROM", "x"), ("COPY", "a.txt b.txt /app/x/"), ("RUN", "true")]
    assert copied_sources(text) == ["a.txt", "b.txt"]
    files = _entries("Dockerfile", "a.txt", "b.txt")
    edited = [*files[:2], SimpleNamespace(kind="f", rel="b.txt", mode=0o444, data="new")]
    assert build_inputs_key("Dockerfile", text, "", files) != build_inputs_key("Dockerfile", text, "", edited)


def test_a_continuation_joins_as_docker_joins_it():
    # the escape and what follows it go; the next line is joined as it is (its leading blanks kept)
    assert copied_sources("FROM x\nCOPY src/ma\\\nin.py /app/\n") == ["src/main.py"]
    assert copied_sources("FROM x\nCOPY a.txt\\\n   b.txt /app/\n") == ["a.txt", "b.txt"]
    assert copied_sources("FROM x\nCOPY ../etc/app.cfg /app/\n") == ["etc/app.cfg"]  # kept inside the context


def test_a_tab_separates_as_a_space_does():
    assert instructions("FROM\tx\nCOPY\ta.txt\t/app/\n") == [("FROM", "x"), ("COPY", "a.txt\t/app/")]
    assert copied_sources("COPY\ta.txt /app/\n") == ["a.txt"]
    assert copied_sources("COPY --chown=1:1\tconf/\t/app/\n") == ["conf"]


def test_a_backtick_escape_directive_is_honoured():
    text = "# escape=`\nFROM x\nCOPY a.txt `\n  b.txt /app/\n"
    assert instructions(text) == [("FROM", "x"), ("COPY", "a.txt   b.txt /app/")]
    files = _entries("Dockerfile", "a.txt", "b.txt")
    edited = [*files[:2], SimpleNamespace(kind="f", rel="b.txt", mode=0o444, data="new")]
    assert build_inputs_key("Dockerfile", text, "", files) != build_inputs_key("Dockerfile", text, "", edited)
    # a directive only counts before anything else: after a comment it is a comment
    assert instructions("# a note\n# escape=`\nFROM x\nCOPY a.txt `\n") == [("FROM", "x"), ("COPY", "a.txt `")]


def test_dockerignore_is_read_as_docker_py_sends_the_context():
    ignored = dockerignored("*.txt\n!requirement[s].txt\n")
    assert ignored("notes.txt") and not ignored("requirements.txt")
    text = "FROM x\nCOPY . /app\n"
    files = _entries("Dockerfile", "requirements.txt", "notes.txt")
    edited = [files[0], SimpleNamespace(kind="f", rel="requirements.txt", mode=0o444, data="new"), files[2]]
    assert build_inputs_key("Dockerfile", text, "*.txt\n!requirement[s].txt\n", files) != \
        build_inputs_key("Dockerfile", text, "*.txt\n!requirement[s].txt\n", edited)
    # a folder left out is not walked, unless a `!` rule starts with its path
    assert dockerignored("conf\n!**/keep.txt\n")("conf/keep.txt")
    assert not dockerignored("conf\n!conf/keep.txt\n")("conf/keep.txt")
