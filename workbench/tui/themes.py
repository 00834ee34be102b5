"""Themes as data: TOML files from the package's themes/ folder and the user's `<data dir>/themes/`.
Each file is validated; the bad ones are reported together and skipped."""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

PACKAGE_THEMES = Path(__file__).resolve().parent.parent / "themes"
DEFAULT_THEME = "workbench-dark"
COLOR_KEYS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "warning",
              "error", "success")
ALLOWED = {"name", "dark", "variables", *COLOR_KEYS}


def _theme_from_file(path: Path) -> Theme:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - ALLOWED
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("`name` must be a non-empty string")
    if "primary" not in data:
        raise ValueError("`primary` is required")
    for key in COLOR_KEYS:
        if key in data:
            try:
                Color.parse(data[key])
            except (ColorParseError, TypeError):
                raise ValueError(f"{key}: {data[key]!r} is not a colour") from None
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ValueError("`dark` must be true or false")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ValueError("`variables` must be a table of strings")
    for variable, value in variables.items():
        if variable.endswith("-style"):
            continue  # text styles such as "bold"; everything else is a colour
        try:
            Color.parse(value)
        except ColorParseError:
            raise ValueError(f"variables.{variable}: {value!r} is not a colour") from None
    return Theme(name=name, dark=dark, variables=variables, **{k: data[k] for k in COLOR_KEYS if k in data})


def load_themes(*folders: Path) -> tuple[list[Theme], list[str]]:
    """Themes from each folder (later folders override earlier names) and `file: problem` for bad ones."""
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = _theme_from_file(path)
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
                errors.append(f"{path.name}: {exc}")
                continue
            themes[theme.name] = theme
    return list(themes.values()), errors
