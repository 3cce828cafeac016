// Package guest is the vtrace guest agent: it moves each CPU's ftrace
// ring-buffer pages from tracefs to the host, through virtio-serial ports,
// on the host's orders.
//
// One goroutine per CPU, locked to an OS thread bound to that CPU, splices
// whole pages from per_cpu/cpuN/trace_pipe_raw into a private pipe and from
// the pipe into the port trace-path-cpuN (stream.go; the port and the -o
// stream are its sinks, sink.go), so no page is copied in user space. It
// waits with poll(2): for data on trace_pipe_raw, for room on the port, and
// on an eventfd through which orders arrive; it never spins and never
// sleeps a fixed time in the normal path. The control port agent-ctl-path
// carries the framed protocol of proto/wire and the line protocol's bare
// orders "1" (start) and "0" (stop), parsed by proto/control (control.go,
// protocol.go).
//
// Stop is lossless: every CPU splices out what full pages are left, then
// reads the page the kernel is still writing with read(2) and sends it
// whole, so the stream stays a sequence of whole pages and holds every event
// recorded up to the stop. With Config.Stdout all CPUs go to one stream,
// each page preceded by a proto/cpustream header naming its CPU.
//
// Lifecycle (agent.go): New opens every file and starts the CPU goroutines,
// idle; each fd has one owner (a CPU's worker, its sink, or the Agent).
// Run obeys the control port until its context ends, then stops (bounded
// by Config.DrainTimeout and Config.Abort) and closes everything. Start and
// Stop give the same orders from Go (orders.go). Close releases what New
// opened and returns what it could not; it is safe after Run and safe to
// call twice.
package guest
