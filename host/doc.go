// Package host holds the host half of vtrace: FIFO setup, libvirt domain
// patching, start/stop orders and collection. Subpackages do the work; this
// file only anchors the directory and the dependency on go-libvirt.
package host

import _ "github.com/digitalocean/go-libvirt"
