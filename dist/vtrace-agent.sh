#!/bin/sh
### BEGIN INIT INFO
# Provides:          vtrace-agent
# Required-Start:    $local_fs
# Required-Stop:     $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: vtrace guest agent
# Description:       Streams ftrace ring-buffer pages to the host over the
#                    virtio-serial ports agent-ctl-path and trace-path-cpuN.
### END INIT INFO
#
# The vtrace guest agent for guests without systemd (busybox init, sysvinit):
#   /etc/init.d/vtrace-agent start|stop|restart|status
# A supervisor shell restarts the agent when it fails, waiting 1 s, then
# twice as long each time up to a minute, as the systemd unit restarts it.
# /etc/default/vtrace-agent may set VTRACE_AGENT_ARGS (more flags of
# `vtrace-guest agent`) and VTRACE_AGENT_LOG.

BIN=@BINDIR@/vtrace-guest
PIDFILE=/run/vtrace-agent.pid
VTRACE_AGENT_ARGS=
VTRACE_AGENT_LOG=/var/log/vtrace-agent.log
[ -r /etc/default/vtrace-agent ] && . /etc/default/vtrace-agent

running() {
	[ -r "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

supervise() {
	delay=1
	child=
	trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
	stopping=
	while [ -z "$stopping" ]; do
		# shellcheck disable=SC2086 # the flags are words
		"$BIN" agent $VTRACE_AGENT_ARGS </dev/null >>"$VTRACE_AGENT_LOG" 2>&1 &
		child=$!
		wait "$child"
		rc=$?
		# wait returns early when a trapped signal arrives: wait again for
		# the agent, which drains before it exits.
		while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
		[ -n "$stopping" ] || [ "$rc" = 0 ] && break
		echo "vtrace-agent: the agent exited with status $rc; restarting in ${delay}s" >>"$VTRACE_AGENT_LOG"
		sleep "$delay"
		delay=$((delay * 2))
		[ "$delay" -gt 60 ] && delay=60
	done
}

start() {
	if running; then
		echo "vtrace-agent: already running (pid $(cat "$PIDFILE"))"
		return 0
	fi
	if [ ! -x "$BIN" ]; then
		echo "vtrace-agent: no $BIN: install it with vtrace-guest install" >&2
		return 5
	fi
	mkdir -p "$(dirname "$VTRACE_AGENT_LOG")" "$(dirname "$PIDFILE")"
	supervise </dev/null >/dev/null 2>&1 &
	echo $! >"$PIDFILE"
	echo "vtrace-agent: started (pid $!, log $VTRACE_AGENT_LOG)"
}

stop() {
	if ! running; then
		rm -f "$PIDFILE"
		echo "vtrace-agent: not running"
		return 0
	fi
	pid=$(cat "$PIDFILE")
	kill -TERM "$pid"
	# The agent sends what it recorded before it exits (--drain-timeout,
	# 10 s by default): wait up to 20 s.
	n=0
	while kill -0 "$pid" 2>/dev/null && [ $n -lt 200 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "vtrace-agent: still running after 20 s; killing it" >&2
		pkill -KILL -P "$pid" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null
	fi
	rm -f "$PIDFILE"
	echo "vtrace-agent: stopped"
}

case "$1" in
start) start ;;
stop) stop ;;
restart) stop && start ;;
status)
	if running; then
		echo "vtrace-agent: running (pid $(cat "$PIDFILE"))"
	else
		echo "vtrace-agent: not running"
		exit 3
	fi
	;;
*)
	echo "usage: $0 start|stop|restart|status" >&2
	exit 2
	;;
esac
