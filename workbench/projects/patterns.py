"""Glob patterns over project-relative POSIX paths, gitignore-style: `*` stays within a path segment,
`**` crosses segments, and a pattern without a slash matches a name at any depth."""

from __future__ import annotations

import re
from typing import Callable, Iterable

ALWAYS_IGNORED = (".git", "__pycache__", ".venv", ".workbench")


def _to_regex(pattern: str) -> str:
    pattern = pattern.strip().lstrip("/")
    anchored = "/" in pattern.rstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    body = glob_regex(pattern)
    # A match on a directory also covers everything below it.
    return (body if anchored else f"(?:.*/)?{body}") + "(?:/.*)?"


def glob_regex(pattern: str) -> str:
    """The regex of one glob over a relative POSIX path: `*` and `?` within a segment, `**/` any number of
    segments (none included), `**` anything."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def compile_patterns(patterns: Iterable[str]) -> Callable[[str], bool]:
    regexes = [_to_regex(p) for p in patterns if p.strip()]
    if not regexes:
        return lambda path: False
    combined = re.compile("|".join(f"(?:{r})" for r in regexes)).fullmatch
    return lambda path: combined(path) is not None


def is_always_ignored(relpath: str) -> bool:
    return any(part in ALWAYS_IGNORED for part in relpath.split("/"))
