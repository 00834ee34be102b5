"""Cell text shared by the screens: statuses in colour, durations, params and metrics in short form."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.text import Text

from workbench.textsafe import printable

STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "yellow", "queued": "cyan",
                "cancelled": "magenta", "lost": "bright_black"}


def status_markup(status: str) -> str:
    """For Static text (markup); table cells use status_cell."""
    return f"[{STATUS_STYLE.get(status, '')}]{status}[/]"


def escape(text: str) -> str:
    """User text (names, params, messages) for markup: control characters shown, every bracket literal.
    (rich's and Textual's own escape only touch tag-like brackets; Textual's parser still misreads an
    untouched one such as `[2J` followed by real markup.)"""
    return printable(str(text)).replace("[", "\\[")


def cell(text: str, style: str = "") -> Text:
    """A table cell as rich Text: never parsed as markup (a param like `[64, 32]` stays literal) and cheap
    to render; control characters are shown, never sent to the terminal."""
    return Text(printable(text), style=style, no_wrap=True, end="")


def metrics_cell(run: dict[str, Any]) -> Text:
    """The run's latest metrics, led by its checks' verdict (✓ all passed, ✗ one failed) when it has checks."""
    text = Text(no_wrap=True, end="")
    if run.get("verdict") == "pass":
        text.append("✓ ", style="green")
    elif run.get("verdict") == "fail":
        text.append("✗ ", style="red")
    text.append(printable(pairs(run["summary"])))
    return text


def status_cell(status: str) -> Text:
    return cell(status, STATUS_STYLE.get(status, ""))


def short_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    return str(value)


def pairs(values: dict[str, Any], limit: int = 2) -> str:
    return " ".join(f"{k}={short_value(v)}" for k, v in list(values.items())[:limit])


def duration(run: dict[str, Any], now: float) -> str:
    if not run.get("started_at"):
        return "-"
    seconds = max(0.0, (run.get("finished_at") or now) - run["started_at"])
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def started(run: dict[str, Any]) -> str:
    stamp = run.get("started_at") or run.get("created_at")
    return time.strftime("%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def ago(stamp: float | None, now: float) -> str:
    if not stamp:
        return "-"
    seconds = max(0, int(now - stamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def size(nbytes: int | None) -> str:
    if nbytes is None:
        return "n/a"
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
