#!/usr/bin/env bash
# The demo through libvirt: defines a domain of type qemu (TCG) that boots the
# test guest directly (kernel, initramfs, command line; no disk), adds the
# trace channels with `vtrace host setup`, starts the domain, collects with
# `vtrace host collect --start DOMAIN`, checks that events arrived from every
# CPU, then destroys the domain, removes the channels (`vtrace host teardown`)
# and undefines it.
#
#   scripts/demo-libvirt.sh [-n DOMAIN] [-o OUT] [-d SECONDS] [-c CPUS] [-C URI]
#
#   -n  domain name (vtrace-demo; one that exists already is refused)
#   -o  capture directory (out/demo-libvirt; replaced)
#   -d  seconds of collection (5)        -c  vCPUs (2)
#   -C  libvirt URI ($LIBVIRT_DEFAULT_URI, else qemu:///system)
#
# Needs root and a running libvirtd; it uses the machine's libvirt as it is
# configured and never changes that configuration. The FIFOs are
# /var/lib/vtrace/DOMAIN (setup's default); the guest's kernel, initramfs and
# console log are in a temporary directory qemu's user can reach.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
name=vtrace-demo out=out/demo-libvirt seconds=5 cpus=2 uri=${LIBVIRT_DEFAULT_URI:-qemu:///system}
usage() { sed -n '9,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "n:o:d:c:C:h" opt; do
	case $opt in
	n) name=$OPTARG ;;
	o) out=$OPTARG ;;
	d) seconds=$OPTARG ;;
	c) cpus=$OPTARG ;;
	C) uri=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "demo-libvirt: -d wants whole seconds" >&2; exit 2; }
[[ $cpus =~ ^[1-9][0-9]*$ ]] || { echo "demo-libvirt: -c wants a number of vCPUs" >&2; exit 2; }

begin=$EPOCHREALTIME
elapsed() { awk -v a="$begin" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf 'demo-libvirt [%5ss] %s\n' "$(elapsed)" "$*"; }
die() { echo "demo-libvirt: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"

virsh() { command virsh -q -c "$uri" "$@"; }

step "checking libvirtd at $uri"
command -v virsh >/dev/null || die "no virsh: apt-get install -y --no-install-recommends libvirt-clients libvirt-daemon-system"
if ! err=$(virsh list --all 2>&1 >/dev/null); then
	die "libvirtd does not answer at $uri: ${err:-no answer}
Start it as your system does (systemctl start libvirtd; without systemd: virtlogd -d && libvirtd -d),
or give the URI of a running one with -C URI."
fi
virsh dominfo "$name" >/dev/null 2>&1 && die "a domain named $name exists already; pick another -n"

export CGO_ENABLED=0
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
vtrace=${VTRACE_BIN:-}
if [ -z "$vtrace" ]; then
	step "building vtrace and the guest"
	"$go" build -trimpath -ldflags "-s -w" -o bin/vtrace ./cmd/vtrace
	vtrace=$repo/bin/vtrace
fi
guest=${VTRACE_GUEST_DIR:-$repo/build/guest}
VTRACE_BIN=$vtrace bash "$here/build-guest.sh" -o "$guest"
qemu=$(command -v qemu-system-x86_64) || die "no qemu-system-x86_64"

# qemu runs as libvirt's unprivileged user (Debian: libvirt-qemu) under the
# default configuration: the kernel, initramfs and console log live in a
# directory it may pass through (0711, as libvirt's own images directory).
work=$(mktemp -d /tmp/vtrace-demo-libvirt.XXXXXX)
chmod 0711 "$work"
install -m 0644 "$guest/vmlinuz" "$guest/initramfs.gz" "$work/"
console=$work/console.log
defined=0
cleanup() {
	local rc=$?
	if [ $defined = 1 ]; then
		virsh destroy "$name" >/dev/null 2>&1 || true
		"$vtrace" host teardown -c "$uri" "$name" >/dev/null 2>&1 || true
		virsh undefine "$name" >/dev/null 2>&1 || true
	fi
	if [ $rc -ne 0 ] && [ -f "$console" ]; then
		echo "demo-libvirt: failed; the guest console's last lines:" >&2
		tail -n 30 "$console" >&2
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# No test port in this domain (vtrace.test=0): the guest runs its workload
# from the command line, right after it is ready.
cat >"$work/domain.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>512</memory>
  <vcpu>$cpus</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$work/vmlinuz</kernel>
    <initrd>$work/initramfs.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 no_timer_check vtrace.test=0 vtrace.heartbeat=1 vtrace.workload=spawn vtrace.seconds=$((seconds + 30))</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$qemu</emulator>
    <serial type='file'>
      <source path='$console'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
step "defining domain $name (type qemu, $cpus vCPUs, direct kernel boot)"
virsh define "$work/domain.xml" >/dev/null
defined=1

step "vtrace host setup $name"
"$vtrace" host setup -c "$uri" "$name" | tee "$work/setup"
grep -q '^warning:' "$work/setup" && die "setup warns that qemu may not open the FIFOs (above)"

# start: virsh start, with what the machine's configuration lacks spelled out.
start() {
	local err
	err=$(virsh start "$name" 2>&1 >/dev/null) && return 0
	echo "demo-libvirt: virsh start $name failed: $err" >&2
	case "$err" in
	*"Permission denied"*)
		cat >&2 <<EOT
qemu, running as the user libvirt gives it (user and group in /etc/libvirt/qemu.conf;
Debian: libvirt-qemu), could not open a file the domain names. With libvirt's default
dynamic_ownership = 1, libvirt hands the channel FIFOs in /var/lib/vtrace/$name to qemu's
user while the domain runs. If /etc/libvirt/qemu.conf sets dynamic_ownership = 0, either set
it back to 1 (and restart libvirtd), or give the FIFOs qemu's group:
  vtrace host setup -c $uri --group libvirt-qemu $name   (the group of qemu.conf's "group")
EOT
		;;
	*apparmor*|*AppArmor*|*"restricted file"*)
		echo "AppArmor refused a path: docs/host-setup.md says which paths libvirt's virt-aa-helper grants." >&2 ;;
	esac
	exit 1
}

# wait_ready: up to 60 s for VTRACE-READY on the console.
wait_ready() {
	local i
	for ((i = 0; i < 600; i++)); do
		grep -q '^VTRACE-READY' "$console" 2>/dev/null && return 0
		grep -q '^VTRACE-FATAL' "$console" 2>/dev/null && die "guest init failed: $(grep -m1 '^VTRACE-FATAL' "$console")"
		sleep 0.1
	done
	return 1
}
step "starting $name through libvirt (console in $console)"
start
if ! wait_ready; then
	step "the guest showed no sign of life in 60 s; restarting it once"
	virsh destroy "$name" >/dev/null
	: >"$console"
	start
	wait_ready || die "the guest did not get ready on the second boot either"
fi
step "guest ready: $(grep -m1 '^VTRACE-BOOT' "$console" | tr -d '\r' | sed 's/^VTRACE-BOOT //')"

step "vtrace host collect --start $name -o $out --duration ${seconds}s"
mkdir -p "$out"
"$vtrace" host collect --start "$name" -o "$out" --duration "${seconds}s" --quiet --force | tee "$work/summary"

step "destroying and undefining $name"
virsh destroy "$name" >/dev/null
"$vtrace" host teardown -c "$uri" "$name" >/dev/null
virsh undefine "$name" >/dev/null
defined=0

bad=$(awk '$1 ~ /^[0-9]+$/ && $5 == 0 { print $1 }' "$work/summary")
[ -z "$bad" ] || die "no events from CPU(s) $bad"
step "done: events from every CPU in $(cd "$out" && pwd)"
