#!/usr/bin/env bash
# Builds a guest that runs systemd, for the test of the agent's unit
# (dist/vtrace-agent.service): a minimal Debian root file system made with
# mmdebstrap from Debian's packages (systemd, udev, kmod), the Debian kernel
# from /boot and its virtio-serial modules, packed as one initramfs that the
# kernel unpacks and systemd runs from. No vtrace in it: the test adds the
# guest binary and its unit as a second, small cpio archive
# (`vtrace-guest install --root`). See docs/service.md.
#
#   scripts/build-systemd-guest.sh [-o OUTDIR]   (default OUTDIR: build/systemd-guest)
#
# Outputs OUTDIR/vmlinuz and OUTDIR/rootfs.cpio.gz. Rebuilt only when an input
# changed (this script, the kernel, its modules, the suite, the mirror); the
# Debian packages are fetched once per build. Needs root.
# Environment: KVER=version picks the kernel (as build-guest.sh does);
# SUITE (bookworm) and MIRROR (the machine's Debian mirror, else
# http://deb.debian.org/debian) choose the packages.
#
# The root file system holds, besides Debian's packages:
#   /init                  loads the virtio-serial modules, then execs systemd
#   /usr/local/sbin/vtrace-test-serve and its unit: runs each line read from
#                          the port "vtrace-test" with sh, answering its output
#                          and "VTRACE-END n=N rc=RC" (as the test guest does)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=$repo/build/systemd-guest
suite=${SUITE:-bookworm}

usage() { echo "usage: $0 [-o OUTDIR]" >&2; exit 2; }
while getopts "o:h" opt; do
	case $opt in
	o) out=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage

log() { echo "build-systemd-guest: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap makes device nodes and owners)"

mirror=${MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\/*\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
mirror=${mirror:-http://deb.debian.org/debian}

for p in mmdebstrap cpio kmod; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		log "installing $p"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >&2 ||
			die "apt-get install $p failed"
	fi
done

kver=${KVER:-}
if [ -z "$kver" ]; then
	for v in $(ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -rV); do
		[ -d "/lib/modules/$v/kernel/drivers/virtio" ] && { kver=$v; break; }
	done
fi
[ -n "$kver" ] && [ -e "/boot/vmlinuz-$kver" ] || die "no /boot/vmlinuz-VERSION with its modules: apt-get install -y linux-image-amd64"
moddir=/lib/modules/$kver
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console)
mod_files=()
for m in "${modules[@]}"; do
	f=$(ls "$moddir"/kernel/drivers/virtio/"$m".ko* "$moddir"/kernel/drivers/char/"$m".ko* 2>/dev/null | head -1 || true)
	if [ -n "$f" ]; then
		mod_files+=("$f")
	elif ! grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null; then
		die "module $m not found under $moddir"
	fi
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 9>"$out/.lock"
flock 9

key=$({
	echo "suite $suite mirror $mirror kernel $kver"
	sha256sum "$0" "/boot/vmlinuz-$kver" "${mod_files[@]}"
} | sha256sum | cut -d' ' -f1)
if [ -f "$out/vmlinuz" ] && [ -f "$out/rootfs.cpio.gz" ] && [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; then
	log "up to date: $out (Debian $suite, kernel $kver)"
	exit 0
fi

root=$(mktemp -d "$out/.root.XXXXXX")
trap 'rm -rf "$root"' EXIT
log "making a Debian $suite root file system from $mirror (a few minutes)"
mmdebstrap --variant=minbase --include=systemd,systemd-sysv,udev,kmod \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
	--customize-hook='echo vtrace-systemd-guest >"$1/etc/hostname"' \
	--customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id; : >"$1/etc/machine-id"' \
	--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
	"$suite" "$root" "$mirror" >&2 || die "mmdebstrap failed"

mkdir -p "$root/lib/modules/vtrace"
: >"$root/lib/modules/vtrace/order"
for f in "${mod_files[@]}"; do
	name=$(basename "$f")
	name=${name%%.ko*}
	case $f in
	*.ko) cp "$f" "$root/lib/modules/vtrace/$name.ko" ;;
	*.ko.xz) xz -dc "$f" >"$root/lib/modules/vtrace/$name.ko" ;;
	*.ko.zst) zstd -qdc "$f" >"$root/lib/modules/vtrace/$name.ko" ;;
	*) die "unknown module format: $f" ;;
	esac
	echo "$name" >>"$root/lib/modules/vtrace/order"
done

cat >"$root/init" <<'EOF'
#!/bin/sh
# The kernel runs this from the initramfs: the virtio-serial stack first
# (udev does not load modules this root file system has no tree for), then
# systemd, which stays on this root.
for m in $(cat /lib/modules/vtrace/order); do
	insmod "/lib/modules/vtrace/$m.ko" || echo "VTRACE-FATAL insmod $m failed" >/dev/console
done
exec /lib/systemd/systemd
EOF
chmod 755 "$root/init"

cat >"$root/usr/local/sbin/vtrace-test-serve" <<'EOF'
#!/bin/sh
# Runs each line read from the port vtrace-test with sh and answers its
# output, then "VTRACE-END n=N rc=RC".
dev=/dev/virtio-ports/vtrace-test
n=0
exec 3<>"$dev"
while IFS= read -r line <&3; do
	n=$((n + 1))
	sh -c "$line" >/run/vtrace-test.reply 2>&1
	echo "VTRACE-END n=$n rc=$?" >>/run/vtrace-test.reply
	cat /run/vtrace-test.reply >&3
done
EOF
chmod 755 "$root/usr/local/sbin/vtrace-test-serve"
cat >"$root/etc/systemd/system/vtrace-test-serve.service" <<'EOF'
[Unit]
Description=test commands on the vtrace-test port
BindsTo=dev-virtio\x2dports-vtrace\x2dtest.device
After=dev-virtio\x2dports-vtrace\x2dtest.device

[Service]
ExecStart=/usr/local/sbin/vtrace-test-serve
Restart=always
EOF
cat >"$root/etc/udev/rules.d/60-vtrace-test.rules" <<'EOF'
SUBSYSTEM=="virtio-ports", ATTR{name}=="vtrace-test", TAG+="systemd", ENV{SYSTEMD_WANTS}+="vtrace-test-serve.service"
EOF
# Say on the console when the system is up.
cat >"$root/etc/systemd/system/vtrace-ready.service" <<'EOF'
[Unit]
Description=say VTRACE-READY on the console

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo VTRACE-READY >/dev/console'

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../vtrace-ready.service "$root/etc/systemd/system/multi-user.target.wants/vtrace-ready.service"

log "packing $out/rootfs.cpio.gz"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1 >"$out/rootfs.cpio.gz.tmp"
cp "/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
mv "$out/rootfs.cpio.gz.tmp" "$out/rootfs.cpio.gz"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$key" >"$out/.key"
log "built $out/vmlinuz and $out/rootfs.cpio.gz ($(du -h "$out/rootfs.cpio.gz" | cut -f1))"
