"""The README's fenced blocks and its recipes: a recipe is the block right below a `<!-- recipe: NAME -->`
line (shared by tests/recipes and benchmarks/makemore_recipe.py)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = re.compile(r"^<!-- recipe: (?P<name>\S+) -->$")
FENCE = re.compile(r"^\s*```(?P<lang>\w*)\s*$")
@dataclass(frozen=True)
class Block:
    lang: str
    text: str


def fenced_blocks(text: str) -> list[tuple[str | None, Block]]:
    """Every fenced block of the README, with the recipe name of the marker right above it (or None)."""
    blocks: list[tuple[str | None, Block]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        above = lines[i - 1].strip() if i else ""
        marker = MARKER.match(above)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        indent = len(lines[i]) - len(lines[i].lstrip())
        body = "\n".join(line[indent:] for line in lines[i + 1:end]) + "\n"
        blocks.append((marker["name"] if marker else None, Block(fence["lang"], body)))
        i = end + 1
    return blocks


def recipe(name: str) -> Block:
    found = [block for marker, block in fenced_blocks(README.read_text()) if marker == name]
    if len(found) != 1:
        raise LookupError(f"README.md has {len(found)} blocks marked <!-- recipe: {name} --> (want 1)")
    return found[0]


def commands(block: Block) -> list[list[str]]:
    """The `workbench` command lines of a shell block (`$ ` prompts, comments and `\\` continuations handled),
    each as argv without the leading `workbench`; `a; b` is two commands."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    out: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip().removeprefix("$ ")
        if not line.startswith("workbench"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        argv: list[str] = []
        for token in [*lexer, ";"]:
            if token != ";":
                argv.append(token)
            elif argv:
                if argv[0] == "workbench":
                    out.append(argv[1:])
                argv = []
    return out
