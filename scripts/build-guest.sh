#!/usr/bin/env bash
# Builds vtrace's test guest: a Debian kernel and an initramfs holding
# busybox-static, the kernel's virtio-serial modules (none when they are
# built in), the static guest binary (cmd/vtrace-guest, as /bin/vtrace) and
# scripts/guest/init. Quick when nothing changed. See docs/guest.md.
#
#   scripts/build-guest.sh [-k KERNEL] [-o OUTDIR]
#
#   -k  kernel series: 6.1 (default: Debian 12's own, linux-image-amd64) or
#       6.12 (Debian's bookworm-backports, fetched by scripts/guest-kernel.sh
#       into its cache when missing); also $KERNEL
#   -o  output directory (default: build/guest for 6.1, build/guest-KERNEL
#       for the others)
#
# Environment: VTRACE_GUEST_BIN=path packs that guest binary instead of
# building one; VTRACE_BIN=path is the host vtrace left in OUTDIR/vtrace
# (for run-guest.sh; default: built);
# KVER=version picks that exact kernel (in /boot, or in scripts/guest-kernel.sh's
# cache) instead of the series' newest; the host's running kernel is not used;
# C_AGENT=path adds that static binary as /bin/trace-agent (the kernel's C
# agent, from scripts/build-c-agent.sh; init starts it with vtrace.agent=c).
# Give such a guest an OUTDIR of its own: the default one has no C agent.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
kernel=${KERNEL:-6.1}
out=

usage() { sed -n '7,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "k:o:h" opt; do
	case $opt in
	k) kernel=$OPTARG ;;
	o) out=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[[ $kernel =~ ^[0-9]+\.[0-9]+$ ]] || { echo "build-guest: -k wants a kernel series such as 6.1 or 6.12, not '$kernel'" >&2; exit 2; }
if [ -z "$out" ]; then
	out=$repo/build/guest
	[ "$kernel" = 6.1 ] || out=$repo/build/guest-$kernel
fi

log() { echo "build-guest: $*" >&2; }
die() { log "$*"; exit 1; }

# The virtio-serial stack, in load order.
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console)

install_missing() {
	local missing=() p want=(busybox-static cpio kmod qemu-system-x86)
	[ "$kernel" = 6.1 ] && want+=(linux-image-amd64)
	for p in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return
	[ "$(id -u)" = 0 ] || die "need root to install ${missing[*]} (or: sudo apt-get install -y --no-install-recommends ${missing[*]})"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# pick_kernel prints "ROOT VERSION": the kernel is ROOT/boot/vmlinuz-VERSION,
# its modules ROOT/lib/modules/VERSION.
pick_kernel() {
	if [ -n "${KVER:-}" ]; then
		local cache=${VTRACE_KERNEL_CACHE:-/var/cache/vtrace/kernels}
		if [ -e "/boot/vmlinuz-$KVER" ]; then
			echo "/ $KVER"
		elif [ -e "$cache/$KVER/boot/vmlinuz-$KVER" ]; then
			echo "$cache/$KVER $KVER"
		else
			die "no /boot/vmlinuz-$KVER nor $cache/$KVER/boot/vmlinuz-$KVER"
		fi
		return
	fi
	bash "$here/guest-kernel.sh" "$kernel" || die "no $kernel kernel for the guest"
}

# find_module NAME prints the module file (.ko, .ko.xz or .ko.zst) of NAME.
find_module() {
	local f
	for f in "$moddir"/kernel/drivers/virtio/"$1".ko* "$moddir"/kernel/drivers/char/"$1".ko*; do
		[ -e "$f" ] && { echo "$f"; return; }
	done
	# Not a module in this kernel: it may be built in.
	if grep -q "/$1.ko" "$moddir/modules.builtin" 2>/dev/null; then
		return
	fi
	die "module $1 not found under $moddir/kernel/drivers/{virtio,char}"
}

# unpack_module SRC DST writes SRC decompressed to DST: busybox insmod
# takes plain .ko files only.
unpack_module() {
	case $1 in
	*.ko) cp "$1" "$2" ;;
	*.ko.xz) xz -dc "$1" >"$2" 2>/dev/null || busybox xz -dc "$1" >"$2" ;;
	*.ko.zst) zstd -qdc "$1" >"$2" ;;
	*.ko.gz) gzip -dc "$1" >"$2" ;;
	*) die "unknown module format: $1" ;;
	esac
}

install_missing
read -r kroot kver < <(pick_kernel) || true
[ -n "${kver:-}" ] || exit 1
kroot=${kroot%/}
vmlinuz=$kroot/boot/vmlinuz-$kver
moddir=$kroot/lib/modules/$kver
# dynamic FILE: true when FILE needs a dynamic loader (the guest has none).
dynamic() { command -v file >/dev/null && file -L "$1" | grep -q dynamically; }
busybox=/bin/busybox # busybox-static's; a dynamic busybox elsewhere would not run
[ -x "$busybox" ] && ! dynamic "$busybox" || die "no static busybox at $busybox: apt-get install -y busybox-static"

mkdir -p "$out"
out=$(cd "$out" && pwd)
# One builder at a time per output directory (test binaries may race).
exec 9>"$out/.lock"
flock 9

# OUTDIR/vtrace-guest is the guest binary packed into the guest (as
# /bin/vtrace); OUTDIR/vtrace is the host vtrace run-guest.sh runs.
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
# place NAME FILE PACKAGE: copy FILE (when given) or build PACKAGE to
# OUTDIR/NAME, replacing it only when it changed.
place() {
	local dst=$out/$1
	if [ -n "$2" ]; then
		[ -x "$2" ] || die "$2 is not an executable"
		cp "$2" "$dst.tmp"
	else
		(cd "$repo" && CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w" -o "$dst.tmp" "$3") ||
			die "build $3 failed"
	fi
	if cmp -s "$dst.tmp" "$dst"; then rm "$dst.tmp"; else mv "$dst.tmp" "$dst"; fi
	! dynamic "$dst" || die "$dst is dynamically linked: build it with CGO_ENABLED=0"
}
place vtrace "${VTRACE_BIN:-}" ./cmd/vtrace
place vtrace-guest "${VTRACE_GUEST_BIN:-}" ./cmd/vtrace-guest
vtrace=$out/vtrace-guest

extra=() # inputs beyond the default guest's
if [ -n "${C_AGENT:-}" ]; then
	[ -x "$C_AGENT" ] || die "C_AGENT=$C_AGENT is not an executable (scripts/build-c-agent.sh makes one)"
	! dynamic "$C_AGENT" || die "C_AGENT=$C_AGENT is dynamically linked: build it with gcc -static"
	extra+=("$C_AGENT")
fi

mod_files=()
for m in "${modules[@]}"; do
	f=$(find_module "$m")
	[ -n "$f" ] && mod_files+=("$f")
done

# Everything that goes into the outputs; unchanged key, nothing to do.
key=$({
	echo "kernel $kver"
	sha256sum "$vmlinuz" "$busybox" "$vtrace" "$here/guest/init" "$0" "${mod_files[@]}"
	[ ${#extra[@]} -eq 0 ] || { echo "c-agent"; sha256sum "${extra[@]}"; }
} | sha256sum | cut -d' ' -f1)
if [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.gz" ] && [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; then
	log "up to date: $out (kernel $kver)"
	exit 0
fi

log "packing $out/initramfs.gz (kernel $kver)"
root=$(mktemp -d "$out/.root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,root,etc,lib/modules/vtrace,usr}
ln -s bin "$root/sbin"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
cp "$busybox" "$root/bin/busybox"
for a in $("$busybox" --list); do
	[ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
cp "$vtrace" "$root/bin/vtrace"
cp "$here/guest/init" "$root/init"
chmod 755 "$root/init" "$root/bin/vtrace"
if [ -n "${C_AGENT:-}" ]; then
	cp "$C_AGENT" "$root/bin/trace-agent"
	chmod 755 "$root/bin/trace-agent"
fi
: >"$root/lib/modules/vtrace/order"
for f in "${mod_files[@]}"; do
	name=$(basename "$f")
	name=${name%%.ko*}
	unpack_module "$f" "$root/lib/modules/vtrace/$name.ko"
	echo "$name" >>"$root/lib/modules/vtrace/order"
done
echo "$kver" >"$root/etc/vtrace-kernel"
# The kernel opens /dev/console before /init runs; without the node init has
# no stdio until it mounts devtmpfs (it redirects itself then).
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$out/initramfs.gz.tmp"
cp "$vmlinuz" "$out/vmlinuz.tmp"
mv "$out/initramfs.gz.tmp" "$out/initramfs.gz"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$key" >"$out/.key"
log "built $out/vmlinuz and $out/initramfs.gz ($(du -h "$out/initramfs.gz" | cut -f1))"
