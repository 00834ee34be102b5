"""A Dockerfile read, never run, as the classic builder reads it: its instructions, and the key of its build
inputs (the Dockerfile plus the files its COPY/ADD lines take from the context docker-py sends, less what
.dockerignore leaves out, links followed as Docker follows them), so the image of a project is built again
only when something it is built from changed, not at every code edit. Where the key cannot follow the
Dockerfile (a variable, a `[...]` class, a heredoc, a backtick escape), it keys the whole context: a build
too many, never a wrong reuse."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from typing import Callable, Iterable, Protocol

from workbench.projects.patterns import glob_regex

WHOLE_CONTEXT = "."
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")  # buildkit's parser directive
_DIRECTIVES = ("escape", "syntax", "check")  # any other `# name=value` is a comment, and ends the directives
_BLANKS = re.compile(r"[\t\v\f\r ]+")  # what separates words in an instruction
_MAX_LINKS = 255  # links followed for one path before it counts as a loop (Docker's own bound)


class ManifestEntry(Protocol):
    kind: str  # "d" directory, "f" file, "l" link
    rel: str
    mode: int
    data: str  # a file's hash, a link's target (relative to its folder)


def escape_character(text: str) -> str:
    """The escape character (`\\`, or what a leading `# escape=` directive names): it also continues lines.
    Directives count only at the very top: a blank line, another comment or an instruction ends them."""
    for number, raw in enumerate(text.splitlines()):
        match = _DIRECTIVE.match((raw.removeprefix("\ufeff") if number == 0 else raw).lstrip())
        if not match or match[1].lower() not in _DIRECTIVES:
            break
        if match[1].lower() == "escape":
            return match[2]
    return "\\"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) as Docker joins them: a line ending in the escape character goes on with
    the next line as it is (comment and blank lines inside skipped), and whitespace separates the word."""
    escape = escape_character(text)
    continues = re.compile(re.escape(escape) + r"[ \t]*$")
    out: list[tuple[str, str]] = []
    current: str | None = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and comments, inside a continued instruction too
        joined, more = continues.subn("", raw.lstrip() if current is None else raw)
        current = (current or "") + joined
        if not more:
            out.append(_split(current))
            current = None
    if current is not None and current.strip():
        out.append(_split(current))
    return out


def _split(line: str) -> tuple[str, str]:
    word, *rest = _BLANKS.split(line.strip(), maxsplit=1)
    return word.upper(), (rest[0].strip() if rest else "")


def copied_sources(text: str) -> list[str]:
    """The build-context paths (Docker's glob patterns) the Dockerfile's COPY and ADD lines take, relative to
    the context; `.` for the whole context. A source the key cannot follow (a variable, a `[...]` class, an
    escape, a heredoc, a Dockerfile with a backtick escape) counts as the whole context, so such a Dockerfile
    is never reused wrongly. URLs and `--from` copies (another stage or image) take nothing from the
    context: an `ADD https://…` source never changes the key."""
    if escape_character(text) != "\\":
        return [WHOLE_CONTEXT]
    sources: list[str] = []
    for instruction, rest in instructions(text):
        if instruction not in ("COPY", "ADD"):
            continue
        words = _words(rest)
        if words is None:
            return [WHOLE_CONTEXT]
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


def _words(rest: str) -> list[str] | None:
    """The instruction's words: its `--flags`, then its paths (in JSON form or shell form, the quotes of a
    shell word taken off); None for a word the key does not follow (an escape, an open quote)."""
    flags = []
    while rest.startswith("--"):
        flag, *after = _BLANKS.split(rest, maxsplit=1)
        flags.append(flag)
        rest = after[0] if after else ""
    if rest.startswith("["):
        try:
            return flags + [str(w) for w in json.loads(rest)]
        except ValueError:
            pass
    words = []
    for word in _BLANKS.split(rest.strip()) if rest.strip() else []:
        try:
            unquoted = shlex.split(word) if "\\" not in word else []
        except ValueError:
            unquoted = []
        if len(unquoted) != 1:
            return None
        words.append(unquoted[0])
    return flags + words


def _clean(path: str) -> str:
    """A context path as Docker scopes it: `.` and empty parts dropped, `..` never above the context."""
    return _followed(path, {}) or WHOLE_CONTEXT


def dockerignored(text: str, dockerfile: str = "Dockerfile") -> Callable[[str], bool]:
    """Whether .dockerignore (`text`) leaves a path out of the context, decided by docker-py's own matcher,
    the one our builds send the context with (`docker.utils.build`): its patterns, its `!` re-includes, and
    its walk, which skips a folder left out unless a `!` rule starts with the folder's path. The Dockerfile
    and .dockerignore are always sent."""
    from docker.utils.build import PatternMatcher

    lines = [line.strip() for line in text.splitlines()]
    matcher = PatternMatcher([line for line in lines if line and not line.startswith("#")] + [f"!{dockerfile}"])
    if len(matcher.patterns) <= 2:  # only the two re-includes
        return lambda rel: False
    reincludes = [p.cleaned_pattern for p in matcher.patterns if p.exclusion]
    skipped: dict[str, bool] = {}

    def walk_skips(folder: str) -> bool:
        if folder not in skipped:
            parent = folder.rpartition("/")[0]
            skipped[folder] = (bool(parent) and walk_skips(parent)) or (
                matcher.matches(folder) and not any(p.startswith(folder) for p in reincludes))
        return skipped[folder]

    def ignored(rel: str) -> bool:
        parent = rel.rpartition("/")[0]
        return (bool(parent) and walk_skips(parent)) or matcher.matches(rel)
    return ignored


def _followed(path: str, links: dict[str, str]) -> str | None:
    """`path` with every link on it followed, inside the context as Docker follows a COPY source's links
    (an absolute target or a `..` stops at the context's root); None for links that loop."""
    pending, at, hops = path.split("/"), [], 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            at = at[:-1]
        elif part not in ("", "."):
            at.append(part)
            target = links.get("/".join(at))
            if target is not None:
                hops += 1
                if hops > _MAX_LINKS:
                    return None
                at = [] if target.startswith("/") else at[:-1]
                pending = target.split("/") + pending
    return "/".join(at) or WHOLE_CONTEXT


def _taken(sources: list[str], links: dict[str, str]) -> re.Pattern[str] | None:
    """One regex over context paths: each source, what its links lead to (the links on its path, and a link
    a wildcard matches), and everything below those; None when links loop (the whole context is taken)."""
    roots = set(sources)
    for source in sources:
        literal = source.split("/")
        wild = next((i for i, part in enumerate(literal) if any(c in part for c in "*?")), len(literal))
        prefix = _followed("/".join(literal[:wild]), links) if wild else ""
        if prefix is None:
            return None
        roots.add("/".join(p for p in [prefix, *literal[wild:]] if p and p != WHOLE_CONTEXT) or WHOLE_CONTEXT)
        if wild < len(literal):
            matches = re.compile(glob_regex(source))
            for link in links:
                if matches.fullmatch(link):
                    target = _followed(link, links)
                    if target is None:
                        return None
                    roots.add(target)
    if WHOLE_CONTEXT in roots:
        return re.compile(".*")
    return re.compile("(?:" + "|".join(glob_regex(root) for root in sorted(roots)) + ")(?:/.*)?")


def build_inputs_key(dockerfile: str, text: str | None, ignore_text: str, entries: Iterable[ManifestEntry]) -> str:
    """sha256 over the Dockerfile (its path and `text`) and every file (path, mode, content hash) or link its
    COPY/ADD lines take from the context, as the snapshot's manifest `entries` list them, less what
    .dockerignore (`ignore_text`) leaves out: the same key means the same build. An unreadable Dockerfile
    (`text` None: the build says why) keys the whole context. Each path is matched against the COPY sources
    first, .dockerignore only for those taken (most of a project is code no COPY names)."""
    entries = [entry for entry in entries if entry.kind != "d" and entry.rel]
    sources = copied_sources(text) if text is not None else [WHOLE_CONTEXT]
    taken = None if WHOLE_CONTEXT in sources else _taken(
        sources, {entry.rel: entry.data for entry in entries if entry.kind == "l"})
    ignored = dockerignored(ignore_text, _clean(dockerfile))
    digest = hashlib.sha256(f"dockerfile {_clean(dockerfile)}\n{text}\n".encode())
    for entry in entries:
        if (taken is None or taken.fullmatch(entry.rel)) and not ignored(entry.rel):
            digest.update(f"{entry.kind} {entry.mode:o} {entry.data} {entry.rel}\n".encode())
    return digest.hexdigest()
