// Package host holds the host half of vtrace: FIFO setup, libvirt domain
// patching, start/stop orders, collection and trace.dat writing. The work
// is done in its subpackages; this package has no code.
package host
