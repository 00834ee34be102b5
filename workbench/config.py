"""config.toml: preferences (theme) and the keymap. Lives in the config dir (docs/architecture.md)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError


@dataclass
class Config:
    theme: str | None = None
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> comma-separated keys
    path: Path | None = None


def load_config(path: Path) -> Config:
    if not path.is_file():
        return Config(path=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WorkbenchError(f"{path}: cannot read the config: {exc}") from None
    unknown = set(data) - {"theme", "keymap"}
    if unknown:
        raise WorkbenchError(f"{path}: unknown key {sorted(unknown)[0]!r} (allowed: theme, keymap)")
    theme = data.get("theme")
    if theme is not None and not isinstance(theme, str):
        raise WorkbenchError(f"{path}: theme: expected a string")
    keymap = data.get("keymap", {})
    if not isinstance(keymap, dict) or not all(isinstance(v, str) for v in keymap.values()):
        raise WorkbenchError(f"{path}: keymap: expected a table of binding id = \"keys\"")
    return Config(theme=theme, keymap=dict(keymap), path=path)


def save_config(config: Config) -> None:
    """Writes the whole file (two simple tables: no TOML writer dependency needed)."""
    assert config.path is not None
    lines = []
    if config.theme:
        lines.append(f"theme = {json.dumps(config.theme)}")
    if config.keymap:
        lines.append("\n[keymap]")
        lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(config.keymap.items())]
    config.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = config.path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(config.path)
