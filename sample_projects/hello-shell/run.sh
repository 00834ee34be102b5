#!/bin/sh
# Minimal Workbench experiment for busybox: no sleeps, used to measure launch overhead.
# Usage: sh run.sh GREETING STEPS
set -e
greeting="${1:-hello}"
steps="${2:-3}"
case "$steps" in
    ''|*[!0-9]*) echo "run.sh: STEPS must be a non-negative integer, got '$steps'" >&2; exit 2 ;;
esac

echo "$greeting from ${WORKBENCH_RUN_ID:-unknown-run}"
echo "hello-shell: writing $steps metric lines" >&2

i=1
while [ "$i" -le "$steps" ]; do
    if [ -n "$WORKBENCH_METRICS" ]; then
        echo "{\"step\": $i, \"value\": $i}" >> "$WORKBENCH_METRICS"
    fi
    echo "step $i/$steps"
    i=$((i+1))
done

out="${WORKBENCH_OUTPUT:-.}"
echo "$greeting from ${WORKBENCH_RUN_ID:-unknown-run}" > "$out/greeting.txt"
echo "wrote $out/greeting.txt"
exit 0
