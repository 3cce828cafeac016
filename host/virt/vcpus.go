package virt

import (
	"fmt"

	"github.com/vtrace/vtrace/host/qmp"
)

// VCPUThreads asks the qemu that runs domain name which host threads run
// its vCPUs: query-cpus-fast through libvirt's qemu-monitor-command (a
// running qemu domain; libvirt marks the domain as tainted by a custom
// monitor command, which changes nothing in it).
func (c *Conn) VCPUThreads(name string) ([]qmp.VCPU, error) {
	d, err := c.lookup(name)
	if err != nil {
		return nil, err
	}
	reply, err := c.l.QEMUDomainMonitorCommand(d, qmp.QueryCPUsFast, 0)
	if err != nil {
		return nil, fmt.Errorf("ask domain %q for its vCPU threads: %w", name, err)
	}
	v, err := qmp.ParseCPUsFast([]byte(reply))
	if err != nil {
		return nil, fmt.Errorf("ask domain %q for its vCPU threads: %w", name, err)
	}
	return v, nil
}
