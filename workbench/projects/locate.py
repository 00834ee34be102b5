"""Finds the line of a dotted key in TOML source (tomllib reports no positions for valid documents)."""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r'^\s*((?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+))*)\s*=')
_INLINE_KEY = re.compile(r'[{,]\s*("[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)\s*=')


def _split(dotted: str) -> tuple[str, ...]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[^.\s]+', dotted)
    return tuple(p.strip("\"'") for p in parts)


def locate(source: str, path: tuple[str, ...]) -> int | None:
    """1-based line of the deepest known prefix of `path`, or None."""
    best_line, best_len = None, 0
    table: tuple[str, ...] = ()
    for number, line in enumerate(source.splitlines(), start=1):
        header = _HEADER.match(line)
        candidates: list[tuple[str, ...]] = []
        if header:
            table = _split(header.group(1))
            candidates.append(table)
        else:
            key = _KEY.match(line)
            if key:
                full = table + _split(key.group(1))
                candidates.append(full)
                rest = line[key.end():]
                if rest.lstrip().startswith("{"):
                    candidates += [full + (k.strip("\"'"),) for k in _INLINE_KEY.findall(rest)]
        for candidate in candidates:
            n = len(candidate)
            if n > best_len and path[:n] == candidate:
                best_line, best_len = number, n
    return best_line
