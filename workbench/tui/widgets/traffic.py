"""A deployment's traffic as the Deployments screen shows it, in 76 columns: per version (live or canary, its
share) requests/s, p50/p99 and error % for the last minute and since the switch; its canary (version,
share, time left, the rollback threshold, the note when no watcher judged it lately); its token state.
Markup lines, every value from the services' records (see workbench/services/deploy_traffic.py)."""

from __future__ import annotations

import time
from typing import Any

from workbench.tui.cells import escape

HEADER = f"{'version':<15} {'window':<14} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'err %':>6} {'requests':>9}"


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _figures_row(label: str, window: str, f: dict[str, Any] | None) -> str:
    if f is None:
        return f"{label:<15} {window:<14} {'no sample from a minute ago yet':>40}"
    errors = _number(f.get("error_pct"), 1)
    style = "red" if f.get("errors") else ""
    errors = f"[{style}]{errors:>6}[/]" if style else f"{errors:>6}"
    return (f"{label:<15} {window:<14} {_number(f.get('rps'), 1):>7} {_number(f.get('p50_ms'), 0):>7} "
            f"{_number(f.get('p99_ms'), 0):>7} {errors} {f['requests']:>9,}")


def since_label(ts: float | None) -> str:
    return f"since {time.strftime('%H:%M:%S', time.localtime(ts))}" if ts else "since the start"


def traffic_lines(traffic: dict[str, Any] | None) -> list[str]:
    """The figures table; one line saying why when the proxy's counters could not be read."""
    if not traffic:
        return []
    if traffic.get("error"):
        return [f"[yellow]traffic unknown: {escape(traffic['error'])}[/]"]
    if not traffic.get("versions"):
        return []
    lines = [f"[b]{HEADER}[/b]"]
    for v in traffic["versions"]:
        label = f"v{v['version']} {v['role']} {v['share']}%"
        lines.append(_figures_row(label, "last minute", v.get("last_minute")))
        lines.append(_figures_row("", since_label(v.get("since")), v.get("since_switch")))
    return lines


def left(seconds: float) -> str:
    if seconds <= 0:
        return "window over: the verdict is due"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s left" if minutes else f"{rest} s left"


def canary_lines(canary: dict[str, Any] | None, now: float) -> list[str]:
    if not canary:
        return []
    lines = [f"[b cyan]canary v{canary['version']} at {canary['share']}%[/] · {left(canary['until'] - now)} · "
             f"rolled back above {canary['max_error_rate']:g}% errors"]
    if canary.get("note"):
        lines.append(f"[yellow]{escape(canary['note'])}[/]")
    return lines


def token_line(deployment: Any) -> str:
    """`deployment`: the facade's DeploymentSummary."""
    if deployment.auth == "token":
        return "[b]token required[/b] (Authorization: Bearer …) · t shows it and copies it"
    return "[yellow]no token[/]: anyone who reaches the endpoint may call it"
