#!/usr/bin/env bash
# Benchmarks the trace.dat writer: `vtrace host convert` of a large capture
# (real ring-buffer pages from a private ftrace instance, replicated to
# SIZE_MB) against a plain `cp` of the same cpuN.raw bytes, same run, page
# cache warm for both; then the size, speed and memory of each format (v6,
# v7, v7 with zstd) next to `trace-cmd convert` of the same data into v7
# (when trace-cmd is installed). Writes the "## trace.dat writer" section
# of docs/PERFORMANCE.md (REPORT=0 to skip). Needs root and tracefs.
# BASELINE=bin (with BASELINE_LABEL=text) times another vtrace's convert of
# the same capture in the same run, for a before/after row.
# Usage: scripts/bench-tracedat.sh   (env: SIZE_MB=200 RUNS=3 WORK=dir VTRACE=bin BASELINE=bin)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-3}
VTRACE=${VTRACE:-$repo/bin/vtrace}
WORK=${WORK:-$(mktemp -d /var/tmp/vtrace-bench-tracedat.XXXXXX)}
export CGO_ENABLED=0
[ -x "$VTRACE" ] || go build -trimpath -o "$VTRACE" ./cmd/vtrace
if ! "$VTRACE" host convert --help >/dev/null 2>&1; then
	echo "bench-tracedat: $VTRACE has no 'host convert' command (register newHostConvertCmd in cmd/vtrace/host.go)" >&2
	exit 1
fi
tracefs=/sys/kernel/tracing
[ -e $tracefs/trace_pipe ] || mount -t tracefs nodev $tracefs
inst=$tracefs/instances/vtrace-bench-tracedat
cleanup() {
	if [ -d "$inst" ]; then
		echo 0 >"$inst/tracing_on"; echo 0 >"$inst/events/enable"; rmdir "$inst"
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
rmdir "$inst" 2>/dev/null || true
mkdir "$inst"

# 1. Real pages: sched and irq events of a small fork-heavy workload.
echo 4096 >"$inst/buffer_size_kb"
echo 1 >"$inst/events/sched/enable"
echo 1 >"$inst/events/irq/enable"
echo 1 >"$inst/tracing_on"
for i in $(seq 300); do /bin/true; echo "vtrace-bench-$i" >"$inst/trace_marker"; done
echo 0 >"$inst/tracing_on"
sample=$WORK/sample
mkdir -p "$sample"
cpus=()
for d in "$inst"/per_cpu/cpu*; do
	n=${d##*/cpu}
	# Whole pages until the buffer is empty (EAGAIN ends dd).
	dd if="$d/trace_pipe_raw" of="$sample/cpu$n.raw" iflag=nonblock bs=4096 status=none 2>/dev/null || true
	cpus+=("$n")
done
"$VTRACE" host convert "$sample" --meta "$inst" >/dev/null 2>&1
if command -v trace-cmd >/dev/null; then
	sample_events=$(trace-cmd report -i "$sample/trace.dat" 2>/dev/null | grep -c '\[[0-9]*\] ' || true)
else
	sample_events=unknown
fi

# 2. The large capture: the sample pages repeated to SIZE_MB in all.
cap=$WORK/capture
mkdir -p "$cap"
cp -r "$sample/meta" "$cap/meta"
per_cpu=$((SIZE_MB * 1024 * 1024 / ${#cpus[@]}))
for n in "${cpus[@]}"; do
	src=$sample/cpu$n.raw
	[ -s "$src" ] || src=$sample/cpu${cpus[0]}.raw
	: >"$cap/cpu$n.raw"
	while [ "$(stat -c %s "$cap/cpu$n.raw")" -lt "$per_cpu" ]; do cat "$src" >>"$cap/cpu$n.raw"; done
done
bytes=$(cat "$cap"/cpu*.raw | wc -c)
cat "$cap"/cpu*.raw >/dev/null # warm the page cache for both contenders

now() { date +%s.%N; }
best() { sort -g | head -1; }
run_cp() {
	rm -rf "$WORK/cp"; mkdir "$WORK/cp"; sync
	local t0; t0=$(now); cp "$cap"/cpu*.raw "$WORK/cp/"; sync; echo "$(now) - $t0" | bc
}
run_convert() { # [VTRACE]
	rm -f "$WORK/out.dat"; sync
	local t0; t0=$(now); "${1:-$VTRACE}" host convert "$cap" -o "$WORK/out.dat" --force >/dev/null; sync; echo "$(now) - $t0" | bc
}
# The fixed cost: loading and checking the metadata, writing the header
# (the sample capture is a few hundred KiB of pages).
run_fixed() {
	rm -f "$WORK/sample.dat"; sync
	local t0; t0=$(now); "$VTRACE" host convert "$sample" -o "$WORK/sample.dat" --force >/dev/null; sync; echo "$(now) - $t0" | bc
}
cp_s=$(for i in $(seq "$RUNS"); do run_cp; done | best)
conv_s=$(for i in $(seq "$RUNS"); do run_convert; done | best)
base_row=
if [ -n "${BASELINE:-}" ]; then
	base_s=$(for i in $(seq "$RUNS"); do run_convert "$BASELINE"; done | best)
	base_row="| ${BASELINE_LABEL:-$BASELINE}, whole run | $(printf '%.3f' "$base_s") | $(echo "scale=0; $(cat "$cap"/cpu*.raw | wc -c) / 1048576 / $base_s" | bc) |"
fi
fixed_s=$(for i in $(seq "$RUNS"); do run_fixed; done | best)
out_bytes=$(stat -c %s "$WORK/out.dat")

# 3. The formats: each run prints "seconds max-RSS-KiB CPU-seconds"; the
# best time is kept with its run's RSS and CPU time (user + system). The
# output of the last run stays as $WORK/NAME.dat.
run_timed() { # NAME COMMAND...
	local name=$1; shift
	rm -f "$WORK/$name.dat"; sync
	local t0; t0=$(now)
	/usr/bin/time -f '%M %U %S' -o "$WORK/rss" "$@" >/dev/null 2>&1
	local rss user sys; read -r rss user sys <"$WORK/rss"
	sync; echo "$(echo "$(now) - $t0" | bc) $rss $(echo "$user + $sys" | bc)"
}
best_run() { sort -g | head -1; }
declare -A fmt_s fmt_rss fmt_cpu fmt_bytes
load=$(cut -d' ' -f1 /proc/loadavg)
fmt_rows=(v6 v7 v7-zstd)
for name in "${fmt_rows[@]}"; do
	case $name in
	v6) args=(--format v6) ;;
	v7) args=(--format v7) ;;
	v7-zstd) args=(--format v7 --compress zstd) ;;
	esac
	r=$(for i in $(seq "$RUNS"); do run_timed "$name" "$VTRACE" host convert "$cap" -o "$WORK/$name.dat" --force "${args[@]}"; done | best_run)
	read -r "fmt_s[$name]" "fmt_rss[$name]" "fmt_cpu[$name]" <<<"$r"; fmt_bytes[$name]=$(stat -c %s "$WORK/$name.dat")
done
tc_rows=()
if command -v trace-cmd >/dev/null; then
	tc_version=$( (trace-cmd --version 2>&1 || true) | grep -m1 -o 'version [0-9.]*' || true)
	# trace-cmd convert reads vtrace's v6 file of the same capture.
	for name in tc-v7 tc-v7-zstd; do
		comp=none; [ $name = tc-v7-zstd ] && comp=zstd
		r=$(for i in $(seq "$RUNS"); do run_timed "$name" trace-cmd convert -i "$WORK/v6.dat" -o "$WORK/$name.dat" --file-version 7 --compression $comp; done | best_run)
		read -r "fmt_s[$name]" "fmt_rss[$name]" "fmt_cpu[$name]" <<<"$r"; fmt_bytes[$name]=$(stat -c %s "$WORK/$name.dat")
		tc_rows+=("$name")
	done
fi
# The pages as stored: what trace-cmd's own summary counts as flyrecord data.
flyrecord() { trace-cmd dump --summary -i "$1" 2>/dev/null | sed -n 's/.* \([0-9]*\) bytes flyrecord data.*/\1/p'; }
fmt_row() { # NAME LABEL
	local name=$1 label=$2 fly=
	local mib; mib=$(echo "scale=1; ${fmt_bytes[$name]} / 1048576" | bc)
	local rate; rate=$(echo "scale=0; $bytes / 1048576 / ${fmt_s[$name]}" | bc)
	if command -v trace-cmd >/dev/null && [ "$name" != v6 ]; then
		fly=$(flyrecord "$WORK/$name.dat"); fly=$(echo "scale=1; $fly / 1048576" | bc)
	fi
	[ "$name" = v6 ] && fly=$(echo "scale=1; $bytes / 1048576" | bc)
	echo "| $label | $(sec "${fmt_s[$name]}") | $(printf '%.2f' "${fmt_cpu[$name]}") | $rate | $mib | ${fly:-?} | $(printf '%.1f' "$(echo "scale=2; $bytes / ${fmt_bytes[$name]}" | bc)") | $((${fmt_rss[$name]} / 1024)) |"
}
# The page check alone: the page reader's parse of real pages, one core.
check_rate=$("${GO:-$(command -v go || echo /usr/local/go/bin/go)}" test -run XXX -bench BenchmarkPageCheck -benchtime 2s ./host/tracedat 2>/dev/null |
	sed -n 's/.*[[:space:]]\([0-9.]*\) MB\/s.*/\1/p' | head -1)
mb=$(echo "scale=1; $bytes / 1048576" | bc)
cp_rate=$(echo "scale=0; $bytes / 1048576 / $cp_s" | bc)
conv_rate=$(echo "scale=0; $bytes / 1048576 / $conv_s" | bc)
ratio=$(echo "scale=2; $cp_s / $conv_s" | bc)
pages_rate=$(echo "scale=0; $bytes / 1048576 / ($conv_s - $fixed_s)" | bc)
sec() { printf '%.3f' "$1"; }
fs=$(df -T "$WORK" | awk 'NR==2 {print $2}')

machine="$(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $fs"
result=$(cat <<EOT
## trace.dat writer

\`scripts/bench-tracedat.sh\` ($(date -u +%Y-%m-%d), $machine): \`vtrace host convert\`
of a capture of ${mb} MiB (${#cpus[@]} CPUs; real sched/irq pages, ${sample_events} events
in a sample capture, repeated) against \`cp\` of the same cpuN.raw files, page cache warm,
each timed to the end of \`sync\`, best of $RUNS.

| | seconds | MiB/s |
|---|---|---|
| cp cpuN.raw | $(sec "$cp_s") | ${cp_rate} |
| vtrace host convert (every page checked), whole run | $(sec "$conv_s") | ${conv_rate} |
| of which the fixed cost (metadata load and check, header) | $(sec "$fixed_s") | |
| pages only (whole run minus fixed cost) | $(sec "$(echo "$conv_s - $fixed_s" | bc)") | ${pages_rate} |${base_row:+
$base_row}

Every page is checked with the page reader on its way into the file (a page it
refuses becomes an empty page, reported): user-space reads and writes of 1 MiB
instead of copy_file_range, and a parse of each page, which alone runs at
${check_rate:-?} MB/s on one core (\`go test -bench PageCheck ./host/tracedat\`,
real sched/irq pages): well under a tenth of a second of CPU for this capture.

convert / cp speed, whole run: ${ratio}. The trace.dat is $((out_bytes / 1048576)) MiB; its header
carries $(($(stat -c %s "$cap/meta/kallsyms" 2>/dev/null || echo 0) / 1024)) KiB of kallsyms and
$(find "$cap/meta/events" -name format | wc -l) event formats. The machine is shared
(2 cores, other jobs running): compare the rows of one run, not runs.

Formats, same capture, same run: \`vtrace host convert --format … --compress …\`
next to \`trace-cmd convert --file-version 7 --compression …\` (trace-cmd ${tc_version:-not installed})
reading the v6 file of the same capture. Seconds to the end of \`sync\`, best of
$RUNS; CPU seconds are user + system of that run on all cores (vtrace compresses
on GOMAXPROCS goroutines, trace-cmd on one thread); MiB/s of ring-buffer pages
(${mb} MiB); "pages stored" is the flyrecord data as \`trace-cmd dump --summary\`
counts it; ratio is pages / file; RSS is the process's peak. Load average when
the formats were timed: ${load} on $(nproc) CPUs.

| writer | seconds | CPU seconds | MiB/s | file MiB | pages stored MiB | ratio | max RSS MiB |
|---|---|---|---|---|---|---|---|
$(fmt_row v6 "vtrace v6")
$(fmt_row v7 "vtrace v7")
$(fmt_row v7-zstd "vtrace v7 + zstd")
$(for n in "${tc_rows[@]}"; do case $n in tc-v7) fmt_row $n "trace-cmd convert v6 → v7";; tc-v7-zstd) fmt_row $n "trace-cmd convert v6 → v7 + zstd";; esac; done)

Both compress ten pages to a chunk; vtrace's zstd is
github.com/klauspost/compress at its default level, trace-cmd's libzstd at its
default (3). trace-cmd's time includes reading the v6 file (page cache warm);
\`trace-cmd record\`'s own compression cannot be measured here (it cannot
enable ftrace on this kernel).
EOT
)
echo "$result"
if [ "${REPORT:-1}" = 1 ]; then
	doc=docs/PERFORMANCE.md
	[ -f $doc ] || printf '# Performance\n' >$doc
	# Replace only our section: from its heading to the next "## " heading.
	awk -v section="$result" '
		/^## / { if (skip) skip = 0; if ($0 == "## trace.dat writer") { skip = 1; if (!done) { print section; print ""; done = 1 }; next } }
		!skip { print }
		END { if (!done) { print ""; print section } }
	' $doc >$doc.tmp && mv $doc.tmp $doc
fi
