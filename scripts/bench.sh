#!/usr/bin/env bash
# `make bench`: every benchmark, each writing its own section of
# docs/PERFORMANCE.md with the machine and the command that made it.
set -euo pipefail
cd "$(dirname "$0")/.."
export VTRACE=${VTRACE:-$PWD/bin/vtrace}
for b in agent collect tracedat vm; do
	s=scripts/bench-$b.sh
	[ -x "$s" ] || [ -f "$s" ] || continue
	echo "== $s"
	bash "$s"
done
