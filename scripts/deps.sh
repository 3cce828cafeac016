#!/usr/bin/env bash
# Installs what vtrace's build, tests and demo need on a Debian machine, and
# mounts tracefs. Idempotent and quick when everything is already there.
set -euo pipefail

pkgs=(qemu-system-x86 linux-image-amd64 busybox-static trace-cmd
      libvirt-daemon-system libvirt-clients cpio kmod
      openssh-server openssh-client # the ssh pair: host/virt's qemu+ssh test
      linux-source-6.1 gcc libc6-dev # the kernel's C agent (scripts/build-c-agent.sh) for e2e's TestIntegrationCAgent
      make man-db groff-base bash-completion systemd # make install's test: man, completions, systemd-analyze verify
      mmdebstrap) # the systemd guest (scripts/build-systemd-guest.sh) for dist's TestIntegrationSystemdUnit
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

if [ "$(id -u)" = 0 ] && [ ! -e /sys/kernel/tracing/trace_pipe ]; then
	mount -t tracefs nodev /sys/kernel/tracing
fi

go mod download
