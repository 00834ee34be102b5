"""Shell pieces the backends that run a script on a machine share (the process backend on an SSH host, and a
Slurm job's batch script): quoting, and the exit record a run's last act writes."""

from __future__ import annotations

import shlex

q = shlex.quote

# `finish CODE` writes the run's exit record atomically (tmp + mv) into "$run/exit_code": its exit code, the
# signal a status of 128+N stands for (sh's convention for "killed by signal N"), and when it ended
FINISH = """finish() {
  sig=null
  if [ "$1" -gt 128 ] && [ "$1" -le 192 ]; then sig=$(($1 - 128)); fi
  printf '{"exit_code": %s, "signal": %s, "finished_at": %s}\\n' "$1" "$sig" "$(date +%s)" \\
    > "$run/exit_code.tmp" && mv -f "$run/exit_code.tmp" "$run/exit_code"
}"""
