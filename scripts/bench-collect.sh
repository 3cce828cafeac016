#!/bin/bash
# Throughput of `vtrace host collect`: dd writes SIZE_MB of zero pages into
# each CPU's FIFO as fast as the collector takes them; prints MiB/s.
# Usage: scripts/bench-collect.sh [CPUS] [SIZE_MB] [OUTDIR]   (as root or not)
set -euo pipefail
cpus=${1:-2}
size_mb=${2:-512}
bin=${VTRACE:-bin/vtrace}
work=$(mktemp -d)
out=${3:-$work/capture}
trap 'kill "$collector" 2>/dev/null || true; rm -rf "$work"' EXIT

for ((i = 0; i < cpus; i++)); do mkfifo "$work/trace-path-cpu$i.in" "$work/trace-path-cpu$i.out"; done
mkfifo "$work/agent-ctl-path.in" "$work/agent-ctl-path.out"

"$bin" host collect --quiet --dir "$work" -o "$out" --force >"$work/summary" &
collector=$!
start=$(date +%s.%N)
pids=()
for ((i = 0; i < cpus; i++)); do
	dd if=/dev/zero of="$work/trace-path-cpu$i.out" bs=1M count="$size_mb" iflag=fullblock status=none &
	pids+=($!)
done
wait "${pids[@]}"
kill -INT "$collector"
wait "$collector"
end=$(date +%s.%N)
cat "$work/summary"
awk -v s="$start" -v e="$end" -v mb=$((cpus * size_mb)) \
	'BEGIN { printf "collected %d MiB in %.2f s: %.0f MiB/s\n", mb, e - s, mb / (e - s) }'
