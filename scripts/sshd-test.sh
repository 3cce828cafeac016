#!/usr/bin/env bash
# Runs a private sshd for the qemu+ssh / qemu+libssh tests, entirely inside
# one directory (nothing under /etc/ssh or ~/.ssh changes), in the mount and
# network namespaces of a private libvirtd (scripts/libvirtd.sh): it listens
# on 127.0.0.1:PORT of that network namespace, which nothing outside it
# reaches, and forwards to that libvirtd's socket at libvirt's default path.
#
#   scripts/sshd-test.sh start DIR PORT PID   generate keys, start sshd in the
#                                             namespaces of process PID (the
#                                             private libvirtd), wait until it answers
#   scripts/sshd-test.sh stop DIR             stop the sshd DIR/sshd.pid names
#
# DIR then holds:
#   id_ed25519        the client key, authorized for root (?keyfile=DIR/id_ed25519)
#   known_hosts       the host key for [127.0.0.1]:PORT (?known_hosts=DIR/known_hosts)
#   sshd_config, host_ed25519, authorized_keys, sshd.pid, sshd.log
# sshd allows only key logins (root included) and Unix-socket forwarding,
# which is how go-libvirt reaches the daemon's socket: no nc or
# virt-ssh-helper runs on the remote side.
set -euo pipefail

usage() { echo "usage: sshd-test.sh start DIR PORT PID | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2

stop() {
	local pid
	pid=$(cat "$dir/sshd.pid" 2>/dev/null) || return 0
	if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = sshd ]; then
		kill -TERM "$pid"
		for _ in $(seq 1 50); do
			[ -d "/proc/$pid" ] || break
			sleep 0.1
		done
	fi
	rm -f "$dir/sshd.pid"
}

case "$cmd" in
stop) [ $# = 2 ] || usage; stop; exit 0 ;;
start) [ $# = 4 ] || usage ;;
*) usage ;;
esac
port=$3 pid=$4
[[ "$port" =~ ^[0-9]+$ ]] && [[ "$pid" =~ ^[0-9]+$ ]] || usage

[ "$(id -u)" = 0 ] || { echo "sshd-test.sh: need root (sshd logs root in)" >&2; exit 1; }
[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = libvirtd ] || { echo "sshd-test.sh: process $pid is not a libvirtd" >&2; exit 1; }
[ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ] ||
	{ echo "sshd-test.sh: libvirtd $pid shares this machine's network namespace; start it with scripts/libvirtd.sh" >&2; exit 1; }
# inns CMD...: run CMD in the private libvirtd's mount and network namespaces.
inns() { nsenter --target "$pid" --mount --net -- "$@"; }
sshd=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$sshd" ] && command -v ssh-keygen >/dev/null || {
	echo "sshd-test.sh: sshd or ssh-keygen missing: apt-get install -y --no-install-recommends openssh-server openssh-client" >&2
	exit 1
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stop
rm -f "$dir"/host_ed25519* "$dir"/id_ed25519* "$dir/known_hosts" "$dir/authorized_keys"
ssh-keygen -q -t ed25519 -N '' -C vtrace-test-host -f "$dir/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -C vtrace-test-client -f "$dir/id_ed25519"
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"

# StrictModes no: DIR may sit under /tmp, which sshd finds too open.
# AllowTcpForwarding local: sshd lets Unix-socket forwarding through only
# when local TCP forwarding is allowed too.
cat >"$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowStreamLocalForwarding yes
AllowTcpForwarding local
X11Forwarding no
PrintMotd no
CONF

# The privilege separation directory, in the private libvirtd's own /run.
inns mkdir -p -m 0755 /run/sshd
inns "$sshd" -t -f "$dir/sshd_config"
inns "$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"

for _ in $(seq 1 100); do
	if [ -s "$dir/sshd.pid" ] && inns bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
		exit 0
	fi
	sleep 0.1
done
echo "sshd-test.sh: sshd does not answer on 127.0.0.1:$port in the network namespace of libvirtd $pid; $dir/sshd.log says:" >&2
cat "$dir/sshd.log" >&2 || true
exit 1
