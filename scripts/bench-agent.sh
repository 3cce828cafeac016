#!/usr/bin/env bash
# Benchmarks `vtrace guest agent` against one `cat trace_pipe_raw > FIFO`
# per CPU, same load, same run (guest/internal/benchagent). Needs root.
# Usage: scripts/bench-agent.sh [-seconds N] [-idle N]
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
[ -x bin/vtrace ] || go build -trimpath -o bin/vtrace ./cmd/vtrace
echo "# $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# scripts/bench-agent.sh $*"
go run ./guest/internal/benchagent -vtrace bin/vtrace "$@"
