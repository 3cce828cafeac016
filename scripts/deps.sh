#!/usr/bin/env bash
# Installs what vtrace needs on a Debian machine and mounts tracefs; for the
# tests it also fetches the second guest kernel (6.12, from Debian's
# bookworm-backports, into scripts/guest-kernel.sh's cache: not installed,
# the machine's apt configuration untouched). Idempotent and quick when
# everything is already there.
#
#   scripts/deps.sh [demo|test] [--list]
#
#   demo  what `make demo` needs: qemu, a kernel and busybox for the test
#         guest, cpio and kmod to pack it, trace-cmd to show the capture
#   test  (the default) that and what the tests add: libvirt, the ssh pair,
#         the kernel's C agent's source and compiler, the XML validator
#   --list  print the set's packages, one a line, and do nothing else
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode=test list=0
for a in "$@"; do
	case $a in
	--list) list=1 ;;
	*) mode=$a ;;
	esac
done
demo=(qemu-system-x86 linux-image-amd64 busybox-static trace-cmd cpio kmod)
case $mode in
demo) pkgs=("${demo[@]}") ;;
test)
	pkgs=("${demo[@]}"
		libvirt-daemon-system libvirt-clients
		libxml2-utils                 # xmllint, for virt-xml-validate: host/domxml's schema test
		openssh-server openssh-client # the ssh pair: host/virt's qemu+ssh test
		linux-source-6.1 gcc libc6-dev # the kernel's C agent (scripts/build-c-agent.sh) for e2e's TestIntegrationCAgent
		pkgconf libkshark-dev libjson-c-dev libtracecmd-dev libtracefs-dev libtraceevent-dev # KernelShark's library: host/tracedat's test loads v6, v7 and zstd files with it
		make man-db groff-base bash-completion systemd # make install's test: man, completions, systemd-analyze verify
		mmdebstrap) # the systemd guest (scripts/build-systemd-guest.sh) for dist's TestIntegrationSystemdUnit
	;;
*) echo "deps: unknown set '$mode': want demo or test" >&2; exit 2 ;;
esac
if [ $list = 1 ]; then
	printf '%s\n' "${pkgs[@]}"
	exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "deps: need root to install ${missing[*]}" >&2; exit 1; }
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The guest kernels the tests boot: 6.1 is linux-image-amd64 above. The demo
# fetches 6.12 only when asked for it (build-guest.sh -k 6.12 does).
[ "$mode" = demo ] || bash "$here/guest-kernel.sh" 6.12 >/dev/null

if [ "$(id -u)" = 0 ] && [ ! -e /sys/kernel/tracing/trace_pipe ]; then
	mount -t tracefs nodev /sys/kernel/tracing
fi

go mod download
