// Package guest is the vtrace guest agent: it moves each CPU's ftrace
// ring-buffer pages from tracefs to the host, through virtio-serial ports,
// on the host's orders.
//
// One goroutine per CPU, locked to an OS thread bound to that CPU, splices
// whole pages from per_cpu/cpuN/trace_pipe_raw into a private pipe and from
// the pipe into the port trace-path-cpuN, so no page is copied in user
// space. It waits with poll(2): for data on trace_pipe_raw, for room on the
// port, and on an eventfd through which orders arrive; it never spins and
// never sleeps a fixed time in the normal path. The control port
// agent-ctl-path carries the orders "1" (start) and "0" (stop), parsed by
// proto/control.
//
// Stop is lossless: every CPU splices out what full pages are left, then
// reads the page the kernel is still writing with read(2) and sends it
// whole, so the stream stays a sequence of whole pages and holds every event
// recorded up to the stop. With Config.Stdout all CPUs go to one stream,
// each page preceded by a proto/cpustream header naming its CPU.
//
// Lifecycle: New opens every file and starts the CPU goroutines, idle. Run
// obeys the control port until its context ends, then stops (bounded by
// Config.DrainTimeout and Config.Abort) and closes everything. Start and
// Stop give the same orders from Go. Close releases what New opened; it is
// safe after Run and safe to call twice.
package guest
