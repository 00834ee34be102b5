"""A Dockerfile read, never run: its instructions, and the key of its build inputs (the Dockerfile plus the
files its COPY/ADD lines take from the build context, minus what .dockerignore leaves out), so the image of
a project is built again only when something it is built from changed, not at every code edit."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from typing import Callable, Iterable, Protocol

from workbench.projects.patterns import glob_regex

WHOLE_CONTEXT = "."


class ManifestEntry(Protocol):
    kind: str  # "d" directory, "f" file, "l" link
    rel: str
    mode: int
    data: str


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    if current.strip():
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def copied_sources(text: str) -> list[str]:
    """The build-context paths (Docker's glob patterns) the Dockerfile's COPY and ADD lines take, relative to
    the context; `.` for the whole context. A source the key cannot follow (a variable, a `[...]` class, a
    heredoc) counts as the whole context, so such a Dockerfile is never reused wrongly. URLs and `--from`
    copies (another stage or image) take nothing from the context."""
    sources: list[str] = []
    for instruction, rest in instructions(text):
        if instruction not in ("COPY", "ADD"):
            continue
        words = _words(rest)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        if any(f.startswith("--from") for f in flags) or len(paths) < 2:
            continue
        for source in paths[:-1]:
            if re.match(r"^[a-z][a-z0-9+.-]*://", source, re.I) or source.startswith("git@"):
                continue
            if any(c in source for c in "$[\\") or source.startswith("<<"):
                return [WHOLE_CONTEXT]  # a variable, a class or an escape: not followed, never guessed
            sources.append(_clean(source))
    return sources


def _words(rest: str) -> list[str]:
    """The instruction's words: its `--flags`, then its paths (in JSON form or shell form)."""
    flags = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    if rest.startswith("["):
        try:
            return flags + [str(w) for w in json.loads(rest)]
        except ValueError:
            pass
    try:
        return flags + shlex.split(rest)
    except ValueError:
        return flags + rest.split()


def _clean(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts) or WHOLE_CONTEXT


def _ancestors(rel: str) -> Iterable[str]:
    """`a/b/c` -> `a`, `a/b`, `a/b/c`."""
    parts = rel.split("/")
    return ("/".join(parts[:n]) for n in range(1, len(parts) + 1))


def dockerignored(text: str) -> Callable[[str], bool]:
    """Docker's .dockerignore: one pattern a line (`#` comments), `!` re-includes, the last match wins, and a
    pattern matching a folder matches all below it. (A `[...]` class is read literally: what it would
    leave out stays a build input, which costs a build, never a wrong reuse.)"""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = _clean(line[1:].strip() if keep else line)
        if pattern == WHOLE_CONTEXT:
            continue
        rules.append((keep, re.compile(glob_regex(pattern))))
    if not rules:
        return lambda rel: False

    def ignored(rel: str) -> bool:
        verdict = False
        for keep, regex in rules:
            if any(regex.fullmatch(part) for part in _ancestors(rel)):
                verdict = not keep
        return verdict
    return ignored


def build_inputs_key(dockerfile: str, text: str | None, ignore_text: str, entries: Iterable[ManifestEntry]) -> str:
    """sha256 over the Dockerfile (its path and `text`) and every file (path, mode, content hash) or link its
    COPY/ADD lines take from the context, as the snapshot's manifest `entries` list them, less what
    .dockerignore (`ignore_text`) leaves out: the same key means the same build. An unreadable Dockerfile
    (`text` None: the build says why) keys the whole context."""
    sources = copied_sources(text) if text is not None else [WHOLE_CONTEXT]
    ignored = dockerignored(ignore_text)
    whole = WHOLE_CONTEXT in sources
    patterns = [re.compile(glob_regex(s)) for s in sources if s != WHOLE_CONTEXT]
    digest = hashlib.sha256(f"dockerfile {_clean(dockerfile)}\n{text}\n".encode())
    for entry in entries:
        if entry.kind == "d" or not entry.rel or ignored(entry.rel):
            continue
        if whole or any(p.fullmatch(part) for p in patterns for part in _ancestors(entry.rel)):
            digest.update(f"{entry.kind} {entry.mode:o} {entry.data} {entry.rel}\n".encode())
    return digest.hexdigest()
