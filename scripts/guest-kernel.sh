#!/usr/bin/env bash
# Finds, or fetches, a Debian kernel of one series (6.1, 6.12, ...) for the
# test guest, and prints "ROOT VERSION": the kernel is ROOT/boot/vmlinuz-VERSION
# and its modules are under ROOT/lib/modules/VERSION. See docs/guest.md.
#
#   scripts/guest-kernel.sh [-n] SERIES
#
#   -n  look only, never download (exit status 1 when there is none)
#
# It looks, in this order, in / (a kernel installed on this machine, such as
# Debian 12's own 6.1 from linux-image-amd64) and in the cache
# ($VTRACE_KERNEL_CACHE, default /var/cache/vtrace/kernels). When neither
# has one, it downloads the newest linux-image-SERIES.N+deb12-amd64 package
# of Debian's bookworm-backports suite (6.12 is there) and unpacks it with
# dpkg-deb -x into the cache: nothing is installed, and the machine's apt
# configuration is left alone (an apt sources file, lists and package cache
# of its own under the cache, through apt-get's Dir:: options). The mirror
# is the one the machine's bookworm entry names in /etc/apt/sources.list*.
# VTRACE_KERNEL_PACKAGE=NAME downloads that package instead of the newest.
set -euo pipefail

cache=${VTRACE_KERNEL_CACHE:-/var/cache/vtrace/kernels}
suite=bookworm-backports

log() { echo "guest-kernel: $*" >&2; }
die() { log "$*"; exit 1; }
usage() { sed -n '6,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

fetch=1
while getopts "nh" opt; do
	case $opt in
	n) fetch=0 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
series=$1
[[ $series =~ ^[0-9]+\.[0-9]+$ ]] || die "SERIES is MAJOR.MINOR (6.1, 6.12), not '$series'"
re_series=${series//./\\.}

# newest ROOT prints the newest VERSION of the series that ROOT has a
# kernel and virtio drivers (built in or modules) of.
newest() {
	local root=$1 f v
	for f in $(ls "$root"/boot/vmlinuz-"$series".* 2>/dev/null | sort -rV); do
		v=${f##*/vmlinuz-}
		[[ $v =~ ^$re_series\.[0-9] ]] || continue
		[ -f "$root/lib/modules/$v/modules.builtin" ] || [ -d "$root/lib/modules/$v/kernel/drivers/virtio" ] || continue
		echo "$v"
		return 0
	done
	return 1
}

# cached prints "DIR VERSION" of the newest kernel of the series in the cache.
cached() {
	local d v
	for d in $(ls -d "$cache"/*/ 2>/dev/null | sort -rV); do
		d=${d%/}
		[ -f "$d/.complete" ] && v=$(newest "$d") && { echo "$d $v"; return 0; }
	done
	return 1
}

if v=$(newest /); then
	echo "/ $v"
	exit 0
fi
cached && exit 0
[ $fetch = 1 ] || die "no $series kernel in /boot nor in $cache (scripts/guest-kernel.sh $series fetches one)"

# --- fetching --------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "no $series kernel here; need root to fetch one into $cache (sudo $0 $series)"
for p in apt-get apt-cache dpkg-deb; do
	command -v $p >/dev/null || die "no $p: a Debian machine is needed to fetch a kernel"
done

# mirror prints "URI KEYRING" of the machine's first bookworm entry with the
# main component, one-line (.list) or deb822 (.sources) format.
mirror() {
	local files=() f
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 1
	awk '
		function has(list, w,   a, n, i) { n = split(list, a, /[ \t]+/); for (i = 1; i <= n; i++) if (a[i] == w) return 1; return 0 }
		function emit(uri, key) { if (!done) print uri, (key == "" ? "-" : key); done = 1 }
		function stanza() {
			if (has(f["types"], "deb") && has(f["suites"], "bookworm") && has(f["components"], "main")) {
				split(f["uris"], u, /[ \t]+/); emit(u[1], f["signed-by"] ~ /^\// ? f["signed-by"] : "")
			}
			delete f
		}
		FILENAME ~ /\.sources$/ {
			if (FILENAME != last) { stanza(); last = FILENAME }
			if ($0 ~ /^[ \t]*$/) { stanza(); next }
			if ($0 ~ /^[ \t]*#/ || $0 ~ /^[ \t]/) next
			k = tolower($0); sub(/:.*/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v); f[k] = v
			next
		}
		{
			if (FILENAME != last) { stanza(); last = FILENAME }
			sub(/#.*/, "")
			if ($1 != "deb") next
			key = ""; i = 2
			if ($2 ~ /^\[/) {
				for (; i <= NF; i++) {
					if ($i ~ /^\[?signed-by=/) { key = $i; sub(/^\[?signed-by=/, "", key); sub(/\]$/, "", key) }
					if ($i ~ /\]$/) { i++; break }
				}
			}
			if ($(i + 1) != "bookworm") next
			for (j = i + 2; j <= NF; j++) if ($j == "main") emit($i, key)
		}
		END { stanza() }' "${files[@]}"
}

read -r uri key < <(mirror) || true
[ -n "${uri:-}" ] || die "no bookworm entry with 'main' in /etc/apt/sources.list*: cannot tell which Debian mirror to fetch $suite from"
[ "$key" != - ] || key=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$key" ] || die "no keyring $key to check $suite with (apt-get install debian-archive-keyring)"

apt=$cache/apt
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d"
# One fetcher at a time.
exec 9>"$cache/.lock"
flock 9
cached && exit 0 # another fetcher was quicker
echo "deb [signed-by=$key] $uri $suite main" >"$apt/sources.list"
opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=$apt/sources.list.d"
	-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
log "reading $suite from $uri (apt state in $apt)"
apt-get -q "${opts[@]}" update >&2 || die "apt-get update of $suite from $uri failed"
pkg=${VTRACE_KERNEL_PACKAGE:-}
if [ -z "$pkg" ]; then
	pkg=$(apt-cache "${opts[@]}" pkgnames "linux-image-$series." |
		grep -E "^linux-image-$re_series\.[0-9]+\+deb12(\.[0-9]+)?-amd64\$" | sort -V | tail -n 1) || true
	[ -n "$pkg" ] || die "$suite at $uri has no linux-image-$series.N+deb12-amd64"
fi
tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
# apt-get download writes there as its sandbox user (_apt) when it can.
id _apt >/dev/null 2>&1 && chown _apt "$tmp"
trap 'rm -rf "$tmp"' EXIT
log "downloading $pkg"
(cd "$tmp" && apt-get -q "${opts[@]}" download "$pkg" >&2) || die "apt-get download $pkg failed"
deb=$(ls "$tmp"/*.deb)
v=${pkg#linux-image-}
log "unpacking $(basename "$deb") ($(du -h "$deb" | cut -f1))"
mkdir "$tmp/root"
dpkg-deb -x "$deb" "$tmp/root"
[ -f "$tmp/root/boot/vmlinuz-$v" ] || die "$pkg holds no boot/vmlinuz-$v"
rm -rf "$tmp/root/usr"
dpkg-deb -f "$deb" Package Version >"$tmp/root/.complete"
rm -rf "${cache:?}/$v"
mv "$tmp/root" "$cache/$v"
log "$pkg is in $cache/$v"
echo "$cache/$v $v"
