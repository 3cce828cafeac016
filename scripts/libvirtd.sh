#!/usr/bin/env bash
# Starts libvirtd by hand (no systemd) the way vtrace's tests and CI need it:
# qemu runs as root without a security driver and libvirt does not remember
# file owners (otherwise it opens and closes every channel FIFO before qemu
# starts). Idempotent: settings already present are left alone, daemons
# already running are not started twice. Exits 0 once
# `virsh -c qemu:///system list --all` answers.
set -euo pipefail

conf=/etc/libvirt/qemu.conf
uri=qemu:///system

[ "$(id -u)" = 0 ] || { echo "libvirtd.sh: need root" >&2; exit 1; }
command -v libvirtd >/dev/null && command -v virsh >/dev/null || {
	echo "libvirtd.sh: libvirtd or virsh missing: apt-get install -y --no-install-recommends libvirt-daemon-system libvirt-clients" >&2
	exit 1
}

# Fast path: already answering.
if timeout 5 virsh -c "$uri" list --all >/dev/null 2>&1; then
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
running libvirtd || libvirtd -d

# The very first start takes a few seconds; give it up to 60.
for _ in $(seq 1 120); do
	if timeout 5 virsh -c "$uri" list --all >/dev/null 2>&1; then
		exit 0
	fi
	sleep 0.5
done
echo "libvirtd.sh: libvirtd does not answer on $uri after 60 s" >&2
exit 1
