#!/usr/bin/env bash
# Boots vtrace's test guest under qemu TCG (no KVM) with the virtio-serial
# ports of the kernel's C agent's README wired to FIFOs in DIR, plus the "vtrace-test" port
# the guest's init takes commands from. See docs/guest.md.
#
#   scripts/run-guest.sh [-k KERNEL] [-c CPUS] [-m MB] [-d DIR] [-g GUESTDIR]
#                        [-a APPEND] [-C mux|stdio|file:PATH] [-p PIDFILE] [-Q SOCKET] [-n] [-T]
#
#   -k  kernel series: 6.1 (default) or 6.12 (see build-guest.sh); also $KERNEL
#   -c  vCPUs (2)                  -m  memory in MiB (512)
#   -d  FIFO directory (/tmp/virtio-trace); missing FIFOs are created
#   -g  guest directory holding vmlinuz and initramfs.gz (build/guest for
#       6.1, build/guest-KERNEL for the others)
#   -a  extra kernel command line, e.g. "vtrace.workload=spawn vtrace.seconds=5"
#   -C  console: mux (default: console and qemu monitor on this terminal,
#       Ctrl-a x quits), stdio (console only, for programs), file:PATH
#   -p  write qemu's pid to PIDFILE    -n  do not (re)build the guest first
#   -T  no vtrace-test port            -Q  QMP socket (for --qmp of host collect)
#
# VTRACE_BIN names the vtrace whose `host qemu-args` lays out the channels
# (default: GUESTDIR/vtrace, the one packed into the guest, else bin/vtrace).
# The script execs qemu: its pid is qemu's, and qemu runs in the foreground.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cpus=2 mem=512 dir=/tmp/virtio-trace guest="" append="" console=mux kernel=${KERNEL:-6.1}
pidfile="" build=1 testport=1 qmp=""

usage() { sed -n '5,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "k:c:m:d:g:a:C:p:Q:nTh" opt; do
	case $opt in
	k) kernel=$OPTARG ;;
	c) cpus=$OPTARG ;;
	m) mem=$OPTARG ;;
	d) dir=$OPTARG ;;
	g) guest=$OPTARG ;;
	a) append=$OPTARG ;;
	C) console=$OPTARG ;;
	p) pidfile=$OPTARG ;;
	Q) qmp=$OPTARG ;;
	n) build=0 ;;
	T) testport=0 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[[ $cpus =~ ^[1-9][0-9]*$ ]] || { echo "run-guest: -c wants a number of vCPUs, not '$cpus'" >&2; exit 2; }
[[ $kernel =~ ^[0-9]+\.[0-9]+$ ]] || { echo "run-guest: -k wants a kernel series such as 6.1 or 6.12, not '$kernel'" >&2; exit 2; }
if [ -z "$guest" ]; then
	guest=$repo/build/guest
	[ "$kernel" = 6.1 ] || guest=$repo/build/guest-$kernel
fi

[ $build = 1 ] && "$here/build-guest.sh" -k "$kernel" -o "$guest"
for f in vmlinuz initramfs.gz; do
	[ -f "$guest/$f" ] || { echo "run-guest: no $guest/$f: run scripts/build-guest.sh -o $guest" >&2; exit 1; }
done
qemu=$(command -v qemu-system-x86_64) ||
	{ echo "run-guest: no qemu-system-x86_64: apt-get install -y --no-install-recommends qemu-system-x86" >&2; exit 1; }

mkdir -p "$dir"
names=(agent-ctl-path)
for ((i = 0; i < cpus; i++)); do names+=("trace-path-cpu$i"); done
[ $testport = 1 ] && names+=(vtrace-test)
for n in "${names[@]}"; do
	for end in in out; do
		[ -p "$dir/$n.$end" ] || mkfifo "$dir/$n.$end"
	done
done

# The kernel's C agent's channels, as vtrace itself lays them out (control port on
# nr=1, trace-path-cpuN on nr=N+2), then the test port on the same controller.
vtrace=${VTRACE_BIN:-$guest/vtrace}
[ -x "$vtrace" ] || vtrace=$repo/bin/vtrace
args=$("$vtrace" host qemu-args --cpus "$cpus" --dir "$dir" | sed 's/\\$//') ||
	{ echo "run-guest: $vtrace host qemu-args failed" >&2; exit 1; }
eval "ports=($args)"
bus=$(printf '%s\n' "${ports[@]}" | sed -n 's/^virtio-serial-pci,.*id=\([^,]*\).*/\1/p')
[ -n "$bus" ] || { echo "run-guest: no virtio-serial-pci in: $args" >&2; exit 1; }
if [ $testport = 1 ]; then
	ports+=(-chardev "pipe,id=vtrace-test,path=${dir//,/,,}/vtrace-test"
		-device "virtserialport,bus=$bus.0,chardev=vtrace-test,id=vtrace-test,name=vtrace-test")
fi

case $console in
mux) con=(-nographic) ;;
stdio) con=(-display none -monitor none -serial stdio) ;;
file:*) con=(-display none -monitor none -serial "file:${console#file:}") ;;
*) echo "run-guest: -C wants mux, stdio or file:PATH, not '$console'" >&2; exit 2 ;;
esac
[ -n "$pidfile" ] && con+=(-pidfile "$pidfile")
[ -n "$qmp" ] && con+=(-qmp "unix:${qmp//,/,,},server=on,wait=off")

# -no-reboot with panic=-1: a kernel panic ends qemu instead of hanging.
# debug-threads names each vCPU thread "CPU N/TCG" in the host's traces.
exec "$qemu" -accel tcg -nodefaults -no-user-config -no-reboot -name vtrace-guest,debug-threads=on \
	-m "$mem" -smp "$cpus" \
	-kernel "$guest/vmlinuz" -initrd "$guest/initramfs.gz" \
	-append "console=ttyS0 quiet panic=-1 no_timer_check $append" \
	"${con[@]}" "${ports[@]}"
