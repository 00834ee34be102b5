"""Text gauges for the fleet view: a fixed-width bar and a sparkline, with n/a for missing values."""

from __future__ import annotations

SPARKS = "▁▂▃▄▅▆▇█"


def bar(percent: float | None, width: int = 10) -> str:
    if percent is None:
        return "n/a".center(width, "·")
    filled = round(max(0.0, min(100.0, percent)) / 100 * width)
    return "█" * filled + "░" * (width - filled)


def sparkline(values: list[float | None], width: int = 20) -> str:
    """The last `width` buckets of a 0–100 series (each bucket its maximum; missing values blank)."""
    if not values:
        return " " * width
    size = max(1, len(values) // width)
    buckets = [values[i:i + size] for i in range(max(0, len(values) - size * width), len(values), size)][-width:]
    out = []
    for bucket in buckets:
        known = [v for v in bucket if v is not None]
        out.append(" " if not known else SPARKS[min(7, int(max(known) / 100 * 7.999))])
    return "".join(out).rjust(width)
