#!/usr/bin/env bash
# `make demo`: vtrace's main job in one command. Builds vtrace and the test
# guest, makes the trace FIFOs with vtrace, boots the guest under qemu TCG,
# collects a few seconds of its workload with `vtrace host collect --start`,
# fetches the guest's tracing metadata, powers the guest off and prints what
# the capture holds. See docs/demo.md.
#
#   scripts/demo.sh [-k KERNEL] [-o OUT] [-d SECONDS] [-c CPUS] [-w WORKLOAD]
#
#   -k  guest kernel: 6.1 (default: Debian 12's own) or 6.12 (Debian's
#       bookworm-backports); also $KERNEL (make demo KERNEL=6.12)
#   -o  capture directory (out/demo; an earlier demo capture there is replaced,
#       any other directory must not hold a capture yet)
#   -d  seconds of collection (5)        -c  guest vCPUs (2)
#   -w  guest workload: spawn (default), busy, marker, idle
#
# Needs root (apt, tracefs) on a Debian machine. Leaves no process behind.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
out=out/demo seconds=5 cpus=2 workload=spawn kernel=${KERNEL:-6.1}
usage() { sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "k:o:d:c:w:h" opt; do
	case $opt in
	k) kernel=$OPTARG ;;
	o) out=$OPTARG ;;
	d) seconds=$OPTARG ;;
	c) cpus=$OPTARG ;;
	w) workload=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "demo: -d wants whole seconds, not '$seconds'" >&2; exit 2; }
[[ $cpus =~ ^[1-9][0-9]*$ ]] || { echo "demo: -c wants a number of vCPUs, not '$cpus'" >&2; exit 2; }
case $kernel in
6.1) guestdir=build/guest ;;
6.12) guestdir=build/guest-6.12 ;;
*) echo "demo: -k wants a guest kernel, 6.1 or 6.12, not '$kernel'" >&2; exit 2 ;;
esac

begin=$EPOCHREALTIME
elapsed() { awk -v a="$begin" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf 'demo [%5ss] %s\n' "$(elapsed)" "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: it installs packages and reads tracefs (sudo make demo)"

# --- what is missing -------------------------------------------------------
step "checking packages"
bash "$here/deps.sh" demo >/dev/null
export CGO_ENABLED=0
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

step "building vtrace and the guest (kernel $kernel)"
"$go" build -trimpath -ldflags "-s -w" -o bin/vtrace ./cmd/vtrace
vtrace=$repo/bin/vtrace
VTRACE_BIN=$vtrace bash "$here/build-guest.sh" -k "$kernel" -o "$guestdir"

# --- the capture directory -------------------------------------------------
force=()
if compgen -G "$out/cpu*.raw" >/dev/null; then
	# Our own default directory, or one an earlier demo made: replace it.
	[ "$out" = out/demo ] || [ -f "$out/.vtrace-demo" ] ||
		die "$out already holds a capture; remove it or pick another -o"
	force=(--force)
	rm -rf "$out/meta" "$out/trace.dat"
fi
mkdir -p "$out"
touch "$out/.vtrace-demo"

# --- FIFOs, guest ----------------------------------------------------------
work=$(mktemp -d /tmp/vtrace-demo.XXXXXX)
fifos=$work/fifo
console=$work/console.log
qemu_pid=
collect_pid=

cleanup() {
	local rc=$?
	for p in $collect_pid $qemu_pid; do
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	exec 3>&- 4<&- 2>/dev/null || true
	if [ $rc -ne 0 ] && [ -f "$console" ]; then
		echo "demo: failed; the guest console's last lines:" >&2
		tail -n 30 "$console" >&2
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "making the FIFOs with vtrace host qemu-args --create in $fifos"
"$vtrace" host qemu-args --cpus "$cpus" --dir "$fifos" --create >/dev/null

# boot N: starts qemu in the background (run-guest.sh execs qemu, so $! is
# qemu's pid) and waits (60 s) for VTRACE-READY.
boot() {
	: >"$console"
	bash "$here/run-guest.sh" -n -k "$kernel" -c "$cpus" -d "$fifos" -g "$guestdir" \
		-C "file:$console" -a "vtrace.boot=$1" </dev/null >"$work/qemu.log" 2>&1 &
	qemu_pid=$!
	local i
	for ((i = 0; i < 600; i++)); do
		grep -q '^VTRACE-READY' "$console" 2>/dev/null && return 0
		grep -q '^VTRACE-FATAL' "$console" 2>/dev/null && die "guest init failed: $(grep -m1 '^VTRACE-FATAL' "$console")"
		kill -0 $qemu_pid 2>/dev/null || die "qemu exited: $(cat "$work/qemu.log")"
		sleep 0.1
	done
	return 1
}

step "booting the guest (qemu TCG, $cpus vCPUs; console in $console)"
if ! boot 1; then
	step "the guest showed no sign of life in 60 s; rebooting once"
	kill -KILL $qemu_pid 2>/dev/null && wait $qemu_pid 2>/dev/null || true
	boot 2 || die "the guest did not get ready on the second boot either"
fi
release=$(sed -n 's/^VTRACE-BOOT kernel=\([^ ]*\).*/\1/p' "$console" | head -n 1)
step "guest ready: $(grep -m1 '^VTRACE-BOOT' "$console" | sed 's/^VTRACE-BOOT //')"

# The guest's test port: one command per line, each answered with its
# output and "VTRACE-END n=N rc=RC" (docs/guest.md).
exec 3<>"$fifos/vtrace-test.in" 4<>"$fifos/vtrace-test.out"
ncmd=0
# guest COMMAND... prints the reply; fails on a non-zero rc or after 60 s.
guest() {
	ncmd=$((ncmd + 1))
	echo "$*" >&3
	local line
	while IFS= read -r -t 60 line <&4; do
		line=${line%$'\r'}
		if [[ $line =~ ^VTRACE-END\ n=$ncmd\ rc=([0-9]+)$ ]]; then
			[ "${BASH_REMATCH[1]}" = 0 ]
			return
		fi
		printf '%s\n' "$line"
	done
	echo "demo: no answer from the guest to '$*'" >&2
	return 1
}

# --- collect ---------------------------------------------------------------
step "vtrace host collect --start --dir $fifos -o $out --duration ${seconds}s (workload: $workload on every CPU)"
"$vtrace" host collect --start --dir "$fifos" -o "$out" --duration "${seconds}s" --quiet "${force[@]}" \
	>"$work/summary" 2>"$work/collect.err" &
collect_pid=$!
# The workload starts once the agent records: before that (the handshake
# and the guest's metadata, megabytes of kallsyms) nobody reads the ring
# buffer, and a busy workload would overwrite its oldest pages.
for ((i = 0; i < 600; i++)); do
	grep -q 'level=DEBUG msg=start ' "$console" 2>/dev/null && break
	kill -0 $collect_pid 2>/dev/null || break
	sleep 0.1
done
guest workload "$workload" "$((seconds - 1))" >/dev/null
wait $collect_pid || { cat "$work/collect.err" >&2; die "vtrace host collect failed"; }
collect_pid=

# --- metadata ----------------------------------------------------------------
# The agent sends the guest's tracing metadata itself (collect saves it in
# OUT/meta). With an agent that does not, read it through the test port: the
# event formats of the systems the capture can hold (ftrace and every enabled
# one), the headers, clock, cmdlines, printk formats and the per-CPU stats,
# as one gzip+base64 text (kallsyms is left out: megabytes over a copy that
# also goes to the serial console).
if [ -f "$out/meta/events/header_page" ]; then
	step "the agent sent the guest's tracing metadata: $out/meta"
else
	step "fetching the guest's tracing metadata through the test port into $out/meta"
	meta_cmd='sh cd /sys/kernel/tracing && s=$(awk '\''FNR == 1 && $0 != "0" { split(FILENAME, p, "/"); print "events/" p[2] "/*/format" }'\'' events/*/enable) && awk '\''FNR == 1 { print "@@@ " FILENAME } { print }'\'' events/header_page events/header_event events/ftrace/*/format $s trace_clock saved_cmdlines printk_formats per_cpu/cpu*/stats | gzip | base64'
	guest "$meta_cmd" >"$work/meta.b64"
	uname_line=$(guest sh uname -a)
	mkdir -p "$out/meta"
	base64 -d "$work/meta.b64" | gunzip | awk -v dir="$out/meta" '
		/^@@@ / {
			if (f) close(f)
			p = substr($0, 5)
			if (p ~ /^per_cpu\/cpu[0-9]+\/stats$/) { split(p, a, "/"); p = "cpustats/" a[2] }
			f = dir "/" p
			d = f; sub(/\/[^\/]*$/, "", d)
			system("mkdir -p \"" d "\"")
			printf "" >f
			next
		}
		f { print >f }'
	printf '%s\n' "$uname_line" >"$out/meta/uname"
fi

# --- power off ---------------------------------------------------------------
step "powering the guest off"
echo poweroff >&3
for ((i = 0; i < 300; i++)); do
	kill -0 $qemu_pid 2>/dev/null || break
	sleep 0.1
done
if kill -0 $qemu_pid 2>/dev/null; then
	step "no power-off within 30 s: killing qemu"
	kill -KILL $qemu_pid
fi
wait $qemu_pid 2>/dev/null || true
qemu_pid=

# --- what the capture holds ------------------------------------------------
if [ ! -f "$out/trace.dat" ]; then
	step "vtrace host convert $out"
	"$vtrace" host convert "$out" >"$work/convert.out" 2>&1 || { cat "$work/convert.out" >&2; die "vtrace host convert failed"; }
fi
"$vtrace" host stats "$out" >"$work/stats" 2>&1 || { cat "$work/stats" >&2; die "vtrace host stats failed"; }
report=
if command -v trace-cmd >/dev/null; then
	report=$(trace-cmd report -i "$out/trace.dat" 2>/dev/null | grep -v '^cpus=' | sed -n '1,5p') ||
		report="(trace-cmd report failed)"
fi

# The collector's "all" row: all BYTES PAGES EVENTS MISSED-PAGES MISSED-EVENTS CUT.
read -r total missed_pages missed_events < <(awk '$1 == "all" { print $4, $5, $6 }' "$work/summary")
echo
echo "==================================================================="
echo " vtrace demo: ${seconds} s of a $cpus-vCPU qemu TCG guest (workload: $workload)"
echo " guest kernel: ${release:-$kernel}"
echo "==================================================================="
echo " capture:   $(cd "$out" && pwd)"
for f in "$out"/cpu*.raw "$out/trace.dat"; do
	printf '            %-10s %10d bytes\n' "${f##*/}" "$(stat -c %s "$f")"
done
echo "            meta/      the guest's event formats, headers, cmdlines, per-CPU stats"
echo
echo " events per CPU (vtrace host collect):"
sed 's/^/   /' "$work/summary"
echo
echo " busiest events (from vtrace host stats $out):"
awk '$1 == "EVENT" { on = 1; next } on && $2 == "all" { print $3, $1 }' "$work/stats" |
	sort -rn | head -n 8 | awk '{ printf "   %8d  %s\n", $1, $2 }'
echo
if [ "${missed_pages:-0}" = 0 ]; then
	echo " lost events: none ($total events; no page flagged with missed events)"
else
	echo " lost events: $missed_pages page(s) flagged, $missed_events event(s) counted as lost"
	echo "              (the guest's ring buffer overwrote them before the agent read them)"
fi
echo
if [ -n "$report" ]; then
	echo " trace-cmd report -i $out/trace.dat (first lines):"
	printf '%s\n' "$report" | cut -c1-110 | sed 's/^/   /'
	echo
fi
echo " done in $(elapsed) s; qemu and the collector have exited."
echo "==================================================================="
