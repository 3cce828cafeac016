#!/usr/bin/env bash
# Runs a private libvirtd for vtrace's tests: it touches nothing of the
# machine's libvirt. The daemons (virtlogd, libvirtd) run in a mount and a
# network namespace of their own, where directories under DIR are mounted over
#
#   /etc/libvirt        DIR/etc    a copy of the packaged configuration files
#   /run                DIR/run    (the daemon's sockets: DIR/run/libvirt/)
#   /var/lib/libvirt    DIR/lib
#   /var/log/libvirt    DIR/log    (libvirtd's own log: DIR/log/libvirtd.log)
#   /var/cache/libvirt  DIR/cache
#
# and they write their pid files to DIR/libvirtd.pid and DIR/virtlogd.pid.
# /etc/libvirt, a libvirtd already running on the machine, its pid file and
# its sockets stay as they are. The configuration is the distribution's:
# every /etc/libvirt/*.conf is copied when dpkg says it is the packaged file,
# and replaced by an empty one (the built-in defaults, which Debian's
# commented-out files restate) when it was edited. qemu.conf is never
# changed; libvirtd.conf gets log_outputs (DIR/log/libvirtd.log) and, with
# --tcp, an unauthenticated TCP listener on 127.0.0.1:16509 of the private
# network namespace, which no process outside that namespace can reach.
#
#   scripts/libvirtd.sh start DIR [--tcp]   start it; exits 0 once it answers
#   scripts/libvirtd.sh stop DIR            destroy its domains, stop it and
#                                           every process left in its network
#                                           namespace
#
# libvirt puts each running domain's qemu in a cgroup under the partition
# "machine" of every cgroup hierarchy (/sys/fs/cgroup/.../machine), making
# the partition when missing; stop removes the partitions that start did not
# find (once they are empty).
#
# Clients reach it at qemu:///system?socket=DIR/run/libvirt/libvirt-sock
# (DIR is made mode 0700: root only), and over TCP from inside its network
# namespace: nsenter --net=/proc/$(cat DIR/libvirtd.pid)/ns/net CMD.
set -euo pipefail

usage() { echo "usage: libvirtd.sh start DIR [--tcp] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2 tcp=0
case "$cmd" in
start) case "${3-}" in "") [ $# = 2 ] || usage ;; --tcp) [ $# = 3 ] || usage; tcp=1 ;; *) usage ;; esac ;;
stop) [ $# = 2 ] || usage ;;
*) usage ;;
esac
die() { echo "libvirtd.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "need root"
case "$dir" in /*) ;; *) die "DIR must be an absolute path, not $dir" ;; esac
dir=${dir%/}
for p in /etc/libvirt /run /var/run /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
	case "$dir/" in "$p"/*) die "DIR must not be under $p: the private namespace mounts over it" ;; esac
done

uri="qemu:///system?socket=$dir/run/libvirt/libvirt-sock"

# alive PIDFILE NAME: the pid in PIDFILE if that process runs NAME.
alive() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}

# inns PID: whether process PID is in the private namespaces (both the
# network and the mount namespace recorded at start).
inns() {
	local n m
	n=$(readlink "/proc/$1/ns/net" 2>/dev/null) && m=$(readlink "/proc/$1/ns/mnt" 2>/dev/null) || return 1
	[ "$n" = "$(cat "$dir/netns")" ] && [ "$m" = "$(cat "$dir/mntns")" ]
}

# members: the pids of every process in the private network namespace
# (qemu's mount namespace is its own, so only the network one counts here),
# this script and its callers aside.
members() {
	local ns p q mine=" "
	ns=$(cat "$dir/netns" 2>/dev/null) || return 0
	for ((q = $$; q > 1; q = $(awk '/^PPid:/ { print $2 }' "/proc/$q/status" 2>/dev/null || echo 1))); do
		mine+="$q "
	done
	for p in /proc/[0-9]*; do
		[[ "$mine" == *" ${p#/proc/} "* ]] && continue
		[ "$(readlink "$p/ns/net" 2>/dev/null)" = "$ns" ] && echo "${p#/proc/}"
	done
	return 0
}

# partitions: the cgroup partitions libvirt makes for domains, where they exist.
partitions() {
	local c
	for c in /sys/fs/cgroup/machine /sys/fs/cgroup/*/machine; do
		[ -d "$c" ] && [ ! -L "${c%/machine}" ] && echo "$c"
	done
	return 0
}

stop() {
	[ -f "$dir/netns" ] || return 0
	local pid i left held=0 p
	# Hold the private network namespace open while stopping what is in it,
	# once a process proves it ours (it is in the recorded mount namespace
	# too): its inode number cannot go to another namespace meanwhile.
	for p in $(members); do
		if inns "$p" && exec 9<"/proc/$p/ns/net"; then
			held=1
			break
		fi
	done
	if pid=$(alive "$dir/libvirtd.pid" libvirtd) && inns "$pid"; then
		# Domains first, so libvirt puts back what it relabelled.
		for d in $(timeout 20 virsh -q -c "$uri" list --name 2>/dev/null); do
			timeout 20 virsh -q -c "$uri" destroy "$d" >/dev/null 2>&1 || true
		done
	fi
	for f in libvirtd virtlogd; do
		if pid=$(alive "$dir/$f.pid" $f) && inns "$pid"; then
			kill -TERM "$pid"
			for ((i = 0; i < 100; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
		fi
	done
	# Whatever is left in the namespace (a qemu, an sshd of the tests) is ours.
	if [ $held = 1 ]; then
		for sig in TERM KILL; do
			left=$(members)
			[ -n "$left" ] || break
			kill -$sig $left 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do [ -z "$(members)" ] && break; sleep 0.1; done
		done
		left=$(members)
		exec 9<&-
		[ -z "$left" ] || die "processes $(echo $left) still run in $dir's namespace"
	elif [ -n "$(members)" ]; then
		echo "libvirtd.sh: its daemons are gone; processes $(members | tr '\n' ' ')share the network namespace they had, left alone" >&2
	fi
	# The cgroup partitions libvirt made for its domains, deepest first.
	local c
	for c in $(partitions); do
		grep -qxF "$c" "$dir/cgroups" 2>/dev/null && continue
		find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	rm -f "$dir/netns" "$dir/mntns" "$dir/libvirtd.pid" "$dir/virtlogd.pid" "$dir/cgroups"
}

if [ "$cmd" = stop ]; then
	stop
	exit 0
fi

for p in libvirtd virtlogd virsh unshare nsenter ip md5sum; do
	command -v $p >/dev/null || die "$p missing: apt-get install -y --no-install-recommends libvirt-daemon-system libvirt-clients util-linux iproute2"
done
[ ! -e "$dir/netns" ] || die "$dir holds a private libvirtd already: scripts/libvirtd.sh stop $dir"

mkdir -p "$dir"
chmod 0700 "$dir"
rm -rf "${dir:?}/etc" "${dir:?}/run" "${dir:?}/lib" "${dir:?}/log" "${dir:?}/cache"
mkdir -m 0755 "$dir/etc" "$dir/run" "$dir/lib" "$dir/log"
mkdir -m 0711 "$dir/cache"

# The packaged configuration: a file dpkg knows with its packaged checksum is
# copied, an edited one is replaced by an empty file (the built-in defaults).
declare -A packaged
while read -r path sum _; do
	[ -n "$path" ] && packaged[$path]=$sum
done < <(command -v dpkg-query >/dev/null && dpkg-query -W -f='${Conffiles}\n' 2>/dev/null | grep '^ /etc/libvirt/' || true)
for f in /etc/libvirt/*.conf; do
	[ -f "$f" ] || continue
	to=$dir/etc/$(basename "$f")
	if [ -n "${packaged[$f]-}" ] && [ "$(md5sum <"$f" | cut -d' ' -f1)" = "${packaged[$f]}" ]; then
		cp "$f" "$to"
	else
		echo "libvirtd.sh: $f is not the packaged file; the private libvirtd gets an empty one (the built-in defaults)" >&2
		: >"$to"
	fi
	chmod --reference="$f" "$to"
done
for key in log_outputs listen_tls listen_tcp listen_addr tcp_port auth_tcp; do
	if grep -Eqs "^[[:space:]]*$key[[:space:]]*=" "$dir/etc/libvirtd.conf"; then
		die "the packaged libvirtd.conf sets $key; the private libvirtd needs it for itself"
	fi
done
{
	echo
	echo '# scripts/libvirtd.sh: a private libvirtd in its own namespaces'
	echo 'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"'
	if [ $tcp = 1 ]; then
		echo 'listen_tls = 0'
		echo 'listen_tcp = 1'
		echo 'listen_addr = "127.0.0.1"'
		echo 'auth_tcp = "none"'
	fi
} >>"$dir/etc/libvirtd.conf"

partitions >"$dir/cgroups"
listen=()
[ $tcp = 1 ] && listen=(--listen)
# The namespaces live as long as a process in them: the daemons.
unshare --mount --net --propagation private -- bash -euc '
	d=$1; shift
	mount --bind "$d/etc" /etc/libvirt
	mount --bind "$d/run" /run
	mount --bind "$d/lib" /var/lib/libvirt
	mount --bind "$d/log" /var/log/libvirt
	mount --bind "$d/cache" /var/cache/libvirt
	ip link set lo up
	readlink /proc/self/ns/net >"$d/netns"
	readlink /proc/self/ns/mnt >"$d/mntns"
	virtlogd -d -p "$d/virtlogd.pid"
	libvirtd -d -p "$d/libvirtd.pid" "$@"
' libvirtd.sh "$dir" "${listen[@]}" || { stop || true; die "libvirtd did not start; see $dir/log/libvirtd.log"; }

for ((i = 0; i < 120; i++)); do
	if timeout 5 virsh -q -c "$uri" list --all >/dev/null 2>&1; then
		exit 0
	fi
	sleep 0.5
done
echo "libvirtd.sh: the private libvirtd does not answer on $uri after 60 s; $dir/log/libvirtd.log ends:" >&2
tail -n 20 "$dir/log/libvirtd.log" >&2 || true
stop || true
exit 1
