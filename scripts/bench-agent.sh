#!/usr/bin/env bash
# Benchmarks `vtrace guest agent` against the kernel's own C agent
# (tools/virtio/virtio-trace from Debian's linux-source, built here with
# scripts/build-c-agent.sh -w: EAGAIN from either splice means wait; the
# change is made to the extracted copy and never committed), same loads,
# same run (guest/internal/benchagent). Needs root.
# Usage: scripts/bench-agent.sh [benchagent flags: -seconds N -idle N -readers agent,c,cat ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
[ -x bin/vtrace ] || go build -trimpath -o bin/vtrace ./cmd/vtrace
bash scripts/build-c-agent.sh -w
echo "# $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# scripts/bench-agent.sh $*"
go run ./guest/internal/benchagent -vtrace bin/vtrace -c-agent build/c-agent-eagain/trace-agent -repeat 2 "$@"
