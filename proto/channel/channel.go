// Package channel names the virtio-serial channels between the host and the
// agent: the names the host gives its FIFOs and the guest's ports, and so
// the contract by which each end finds the other. The names are the kernel's
// C agent's (tools/virtio/virtio-trace), so either end can be that agent or
// talk to it.
//
//	agent-ctl-path     control: orders and frames to the agent, its replies back
//	trace-path-cpuN    CPU N's ring-buffer pages, guest to host
//	trace-pipe-cpuN    trace-cmd's name for the same data channel (accepted by the agent)
//
// N is a CPU number from 0 to tracefs.MaxCPU.
package channel

import (
	"strconv"

	"github.com/vtrace/vtrace/proto/tracefs"
)

// Ctl is the name of the control channel.
const Ctl = "agent-ctl-path"

// DataPrefix starts the name of every data channel; the CPU number ends it.
const DataPrefix = "trace-path-cpu"

// traceCmdPrefix starts trace-cmd's names of the data channels.
const traceCmdPrefix = "trace-pipe-cpu"

// Data returns the name of CPU cpu's data channel: trace-path-cpuN.
func Data(cpu int) string { return DataPrefix + strconv.Itoa(cpu) }

// TraceCmdData returns trace-cmd's name for CPU cpu's data channel:
// trace-pipe-cpuN.
func TraceCmdData(cpu int) string { return traceCmdPrefix + strconv.Itoa(cpu) }

// ParseData returns N for a channel named trace-path-cpuN, N a CPU number
// (0 to tracefs.MaxCPU, no sign, no leading zeros), and false for any other
// name, trace-cmd's included.
func ParseData(name string) (int, bool) {
	return tracefs.CPUFromName(name, DataPrefix, "")
}

// Names lists the channels of a guest with cpus CPUs: Ctl first, then the
// data channels of CPUs 0 to cpus-1.
func Names(cpus int) []string {
	names := []string{Ctl}
	for i := 0; i < cpus; i++ {
		names = append(names, Data(i))
	}
	return names
}
