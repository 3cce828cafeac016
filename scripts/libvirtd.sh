#!/usr/bin/env bash
# Starts libvirtd by hand (no systemd) the way vtrace's tests and CI need it:
# qemu runs as root without a security driver and libvirt does not remember
# file owners (otherwise it opens and closes every channel FIFO before qemu
# starts). Idempotent: settings already present are left alone, daemons
# already running are not started twice. Exits 0 once
# `virsh -c qemu:///system list --all` answers.
#
#   scripts/libvirtd.sh             start libvirtd (the default above)
#   scripts/libvirtd.sh --tcp PORT  also listen on 127.0.0.1:PORT without
#                                   authentication (qemu+tcp://127.0.0.1:PORT/system),
#                                   for the remote-URI tests: adds a marked block to
#                                   /etc/libvirt/libvirtd.conf and restarts libvirtd
#                                   with --listen
#   scripts/libvirtd.sh --no-tcp    removes that block and, if libvirtd runs with
#                                   --listen, restarts it without
# Running domains survive the restarts (libvirtd reconnects to their qemu);
# open client connections do not.
set -euo pipefail

conf=/etc/libvirt/qemu.conf
dconf=/etc/libvirt/libvirtd.conf
pidfile=/run/libvirtd.pid
uri=qemu:///system
begin='# vtrace scripts/libvirtd.sh --tcp: begin'
end='# vtrace scripts/libvirtd.sh --tcp: end'

usage() { echo "usage: libvirtd.sh [--tcp PORT | --no-tcp]" >&2; exit 2; }
mode=default port=
case "${1-}" in
"") ;;
--tcp)
	mode=tcp port=${2-}
	[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || usage
	[ $# = 2 ] || usage ;;
--no-tcp) mode=notcp; [ $# = 1 ] || usage ;;
*) usage ;;
esac

[ "$(id -u)" = 0 ] || { echo "libvirtd.sh: need root" >&2; exit 1; }
command -v libvirtd >/dev/null && command -v virsh >/dev/null || {
	echo "libvirtd.sh: libvirtd or virsh missing: apt-get install -y --no-install-recommends libvirt-daemon-system libvirt-clients" >&2
	exit 1
}

answers() { timeout 5 virsh -c "$1" list --all >/dev/null 2>&1; }

# wait_for URI...: until every URI answers, up to 60 s (the very first
# start takes a few seconds).
wait_for() {
	for _ in $(seq 1 120); do
		local ok=1 u
		for u in "$@"; do answers "$u" || { ok=0; break; }; done
		[ $ok = 1 ] && return 0
		sleep 0.5
	done
	echo "libvirtd.sh: libvirtd does not answer on $* after 60 s" >&2
	exit 1
}

# pid of the running libvirtd (from its pid file, checked), or nothing.
daemon_pid() {
	local pid
	pid=$(cat "$pidfile" 2>/dev/null) || return 0
	[ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = libvirtd ] && echo "$pid"
	return 0
}

# listening: whether the running libvirtd was started with --listen.
listening() {
	local pid
	pid=$(daemon_pid)
	[ -n "$pid" ] && tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qx -- --listen
}

# restart [ARGS]: stop the running libvirtd (by its pid file) and start it
# again with ARGS.
restart() {
	local pid
	pid=$(daemon_pid)
	if [ -n "$pid" ]; then
		kill -TERM "$pid"
		for _ in $(seq 1 300); do
			[ -d "/proc/$pid" ] || break
			sleep 0.1
		done
		[ ! -d "/proc/$pid" ] || { echo "libvirtd.sh: libvirtd $pid does not stop" >&2; exit 1; }
	fi
	libvirtd -d "$@"
}

# The block --tcp adds: between its markers, removed whole by --no-tcp.
# Fails (returns 1) when there was none.
remove_block() {
	[ -f "$dconf" ] && grep -qxF "$begin" "$dconf" || return 1
	sed -i "\\|^$begin\$|,\\|^$end\$|d" "$dconf"
}

# --no-tcp undoes only what --tcp did: a daemon listening by someone
# else's configuration is left alone.
if [ "$mode" = notcp ]; then
	if remove_block && listening; then
		restart
		wait_for "$uri"
	fi
	exit 0
fi

# Fast path: already answering (and on TCP when asked).
tcpuri="qemu+tcp://127.0.0.1:$port/system"
if [ "$mode" = default ] && answers "$uri"; then
	exit 0
fi
if [ "$mode" = tcp ] && answers "$uri" && answers "$tcpuri"; then
	exit 0
fi

# set KEY VALUE: append "KEY = VALUE" unless an uncommented KEY line exists.
set_conf() {
	if ! grep -Eq "^[[:space:]]*$1[[:space:]]*=" "$conf"; then
		echo "$1 = $2" >>"$conf"
	fi
}
mkdir -p "$(dirname "$conf")"
touch "$conf"
set_conf user '"root"'
set_conf group '"root"'
set_conf security_driver '"none"'
set_conf remember_owner 0

running() { pgrep -x "$1" >/dev/null 2>&1; }
running virtlogd || virtlogd -d

if [ "$mode" = default ]; then
	running libvirtd || libvirtd -d
	wait_for "$uri"
	exit 0
fi

# --tcp: our block replaces an earlier one; keys set elsewhere are not ours
# to override.
touch "$dconf"
remove_block || true
for key in listen_tls listen_tcp listen_addr tcp_port auth_tcp; do
	if grep -Eq "^[[:space:]]*$key[[:space:]]*=" "$dconf"; then
		echo "libvirtd.sh: $dconf already sets $key; refusing to override it" >&2
		exit 1
	fi
done
cat >>"$dconf" <<CONF
$begin
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "$port"
auth_tcp = "none"
$end
CONF
restart --listen
wait_for "$uri" "$tcpuri"
