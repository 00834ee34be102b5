"""The git state a run records: commit, dirty flag and diff, and notes on what git could not tell or what the
snapshot holds that the commit does not."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

GIT_DIFF_LIMIT = 1 << 20
UNTRACKED_LISTED = 50  # untracked files named in a run's "git" event; the rest are counted


def git_state(root: Path, exclude: list[str] | None = None) -> dict[str, Any]:
    """The commit, whether the work tree differs from it (1, 0, or None = unknown) and the diff. `notes` holds
    (kind, message) events for the run: a "warning" when git could not tell the state (a repository with a
    missing object: never recorded as clean), and a "git" event listing untracked files (ignored ones too)
    that go into the snapshot and so into the run, though the commit does not hold them."""
    def git(*args: str) -> tuple[str | None, str]:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"git {args[0]}: {exc}"
        if done.returncode != 0:
            first = next((ln for ln in done.stderr.decode(errors="replace").splitlines() if ln.strip()), "")
            return None, f"git {args[0]} failed (exit {done.returncode}){': ' + first.strip() if first else ''}"
        return done.stdout.decode(errors="replace"), ""

    commit, _ = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    state: dict[str, Any] = {"git_commit": commit.strip(), "notes": []}
    diff, why = git("diff", "HEAD", "--", ".")
    if diff is None:
        state.update(git_dirty=None, git_diff=None)
        state["notes"].append(("warning", f"git state unknown: {why[:300]}"))
    else:
        state.update(git_dirty=int(bool(diff)), git_diff=diff[:GIT_DIFF_LIMIT] if diff else None)
    listing, why = git("ls-files", "--others", "-z", "--", ".")
    if listing is None:
        state["notes"].append(("warning", f"untracked files unknown: {why[:300]}"))
        return state
    from workbench.projects.patterns import ALWAYS_IGNORED, compile_patterns

    excluded = compile_patterns(exclude or [])

    def snapshotted(rel: str) -> bool:
        parts = rel.split("/")
        return not any(p in ALWAYS_IGNORED for p in parts) and \
            not any(excluded("/".join(parts[:n])) for n in range(1, len(parts) + 1))

    untracked = [rel for rel in listing.split("\0") if rel and snapshotted(rel)]
    if untracked:
        shown = ", ".join(untracked[:UNTRACKED_LISTED])
        more = f" and {len(untracked) - UNTRACKED_LISTED} more" if len(untracked) > UNTRACKED_LISTED else ""
        state["notes"].append(("git", f"{len(untracked)} untracked file(s) in the snapshot, not in the commit: "
                                      f"{shown}{more}"))
    return state
