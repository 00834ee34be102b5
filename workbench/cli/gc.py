"""`workbench gc`: reclaim the snapshots, run dirs and images no run uses, here and on SSH hosts."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from workbench.cli.output import emit_json, say
from workbench.formatting import human_bytes


def cmd_gc(wb: Any, args: argparse.Namespace) -> int:
    result = wb.gc()
    if args.json:
        emit_json(result)
    else:
        say(f"removed {result['snapshots_removed']} snapshot(s), {result['run_dirs_removed']} orphaned run "
            f"dir(s) and {result['images_removed']} image(s) no run needs; "
            f"freed {result['bytes_freed'] / 2**20:.1f} MiB")
        if result.get("image_disk_bytes") is not None:
            say(f"Workbench's images now take {human_bytes(result['image_disk_bytes'])} on disk "
                f"({result['images_left']} image(s), shared base layers counted once)")
        for name, freed in (result.get("hosts") or {}).items():
            say(f"{name}: removed {freed['snapshots_removed']} snapshot(s) ({freed['objects_removed']} file(s) no "
                f"snapshot uses), {freed['run_dirs_removed']} run dir(s) and {freed['containers_removed']} "
                "container(s) no run needs")
        for note in result["notes"]:
            say(f"note: {note}")
    return 0


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    command(sub, "gc", cmd_gc, "reclaim snapshots and run dirs no run uses")
