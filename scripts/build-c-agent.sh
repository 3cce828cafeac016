#!/usr/bin/env bash
# Builds the kernel's own virtio-trace agent (tools/virtio/virtio-trace in
# the Linux source) as a static binary, for the end-to-end test that drives
# it from vtrace's host side (internal/e2e/cagent_test.go). Its source is
# not part of this repository: it comes from Debian's linux-source package,
# and only tools/virtio/virtio-trace/ is taken out of the tarball.
#
#   scripts/build-c-agent.sh [-w] [-o OUTDIR]  (default OUTDIR: build/c-agent,
#                                               with -w build/c-agent-eagain)
#
# Outputs OUTDIR/trace-agent (and the extracted source under OUTDIR/src).
#
# -w applies, to the extracted copy only, the change the benchmark
# (scripts/bench-agent.sh) measures the C agent with: EAGAIN from either
# splice means "wait". Its pipe is non-blocking, so both splices say
# EAGAIN, which the unchanged agent takes for a fatal error. One line
# before each check in trace-agent-rw.c:
#   if (rlen < 0 && errno == EAGAIN) rlen = 0;
#     (nothing to read: the agent's own wait, usleep 100 ms)
#   if (ret < 0 && errno == EAGAIN) { poll(...POLLOUT...); continue; }
#     (no room: wait until the output takes data, then splice again)
# Installs linux-source-6.1, gcc and libc6-dev with apt when they are missing
# (as root). Quick when nothing changed (a key in OUTDIR/.key).
#
# Environment: LINUX_SOURCE_PKG=name picks another source package (default
# linux-source-6.1, the one Debian bookworm's kernel comes from).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=
wait=0
pkg=${LINUX_SOURCE_PKG:-linux-source-6.1}

usage() { echo "usage: $0 [-w] [-o OUTDIR]" >&2; exit 2; }
while getopts "wo:h" opt; do
	case $opt in
	o) out=$OPTARG ;;
	w) wait=1 ;;
	*) usage ;;
	esac
done
if [ -z "$out" ]; then
	out=$repo/build/c-agent
	[ "$wait" = 1 ] && out=$repo/build/c-agent-eagain
fi
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage

log() { echo "build-c-agent: $*" >&2; }
die() { log "$*"; exit 1; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_missing() {
	local missing=() p
	for p in "$pkg" gcc libc6-dev xz-utils; do
		installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return
	[ "$(id -u)" = 0 ] || die "need root to install ${missing[*]} (or: sudo apt-get install -y --no-install-recommends ${missing[*]})"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

install_missing
# The package ships one tarball, /usr/src/linux-source-VERSION.tar.xz.
tarball=$(dpkg -L "$pkg" | grep -E '^/usr/src/linux-source-[^/]*\.tar\.xz$' | head -n1) ||
	die "$pkg has no /usr/src/linux-source-*.tar.xz"
[ -f "$tarball" ] || die "$tarball is missing: apt-get install --reinstall $pkg"

mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 9>"$out/.lock"
flock 9

key=$({
	echo "$pkg $(dpkg-query -W -f='${Version}' "$pkg")"
	stat -c '%n %s %Y' "$tarball"
	gcc --version | head -n1
	sha256sum "$0"
	echo "wait=$wait"
} | sha256sum | cut -d' ' -f1)
if [ -x "$out/trace-agent" ] && [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; then
	log "up to date: $out/trace-agent ($pkg)"
	exit 0
fi

log "extracting tools/virtio/virtio-trace from $tarball"
rm -rf "$out/src" "$out/.src"
mkdir -p "$out/.src"
tar -xJf "$tarball" -C "$out/.src" --wildcards '*/tools/virtio/virtio-trace/*'
src=$(find "$out/.src" -type d -path '*/tools/virtio/virtio-trace' | head -n1)
[ -n "$src" ] && [ -f "$src/trace-agent.c" ] || die "no tools/virtio/virtio-trace/trace-agent.c in $tarball"
mv "$src" "$out/src"
rm -rf "$out/.src"

cflags=()
if [ "$wait" = 1 ]; then
	cflags=(-D_GNU_SOURCE= -include errno.h -include poll.h) # for the added lines
	log "EAGAIN from either splice means wait (trace-agent-rw.c, extracted copy)"
	rw=$out/src/trace-agent-rw.c
	sed -i -e 's/^\([[:space:]]*\)if (rlen < 0) {$/\1if (rlen < 0 \&\& errno == EAGAIN) rlen = 0;\n&/' \
		-e 's/^\([[:space:]]*\)if (ret < 0) {$/\1if (ret < 0 \&\& errno == EAGAIN) { poll(\&(struct pollfd){ .fd = ts->out_fd, .events = POLLOUT }, 1, -1); continue; }\n&/' "$rw"
	[ "$(grep -c 'errno == EAGAIN' "$rw")" = 2 ] || die "could not apply the EAGAIN change to $rw"
fi

log "compiling $out/trace-agent"
(cd "$out/src" && gcc -static -O2 -pthread "${cflags[@]}" -o "$out/trace-agent.tmp" \
	trace-agent.c trace-agent-ctl.c trace-agent-rw.c) || die "compile trace-agent failed"
mv "$out/trace-agent.tmp" "$out/trace-agent"
echo "$key" >"$out/.key"
log "built $out/trace-agent ($pkg)"
