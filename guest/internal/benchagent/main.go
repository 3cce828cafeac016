// Command benchagent measures `vtrace guest agent` against the kernel's own
// C agent (tools/virtio/virtio-trace, built by scripts/build-c-agent.sh -w)
// and, on request, against the plainest alternative, one
// `cat per_cpu/cpuN/trace_pipe_raw > FIFO` per CPU: each under the same
// event load in the same run, at full load and at a quarter of it, with
// the instance's default buffer size and with a larger one. It reports MB
// and events moved per CPU-second of the reader, events lost (overrun),
// the reader's peak RSS, and its wake-ups while the ring buffer is empty.
// It needs root and tracefs; scripts/bench-agent.sh runs it.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/tracefs"
	"golang.org/x/sys/unix"
)

var (
	vtrace     = flag.String("vtrace", "bin/vtrace", "the vtrace binary")
	vtrace2    = flag.String("vtrace2", "", "another vtrace binary, measured as reader agent2 (to compare two builds)")
	cAgent     = flag.String("c-agent", "", "the kernel's C agent, built by scripts/build-c-agent.sh -w (needed for reader c)")
	readers    = flag.String("readers", "agent,agent-rt,c", "readers to measure, comma-separated: agent, agent-rt (agent --rt-priority 1), c (the kernel's C agent), cat, agent2 (-vtrace2)")
	buffers    = flag.String("buffers", "default,16384", "buffer_size_kb of each configuration, comma-separated (default: the instance's own)")
	loads      = flag.String("loads", "full,quarter", "loads, comma-separated: full (every event enabled), quarter (-quarter-events only)")
	quarterEv  = flag.String("quarter-events", "syscalls/sys_enter_read,syscalls/sys_enter_write", "the events of the quarter load: event systems or system/event, comma-separated")
	seconds    = flag.Int("seconds", 10, "length of each loaded run")
	idle       = flag.Int("idle", 5, "length of the empty-buffer run (first configuration of each reader only; 0: none)")
	percent    = flag.Int("buffer-percent", -1, "set the instance's buffer_percent (default: leave the kernel's)")
	agentArgs  = flag.String("agent-args", "", "more arguments for vtrace guest agent, space-separated")
	fifoSize   = flag.Int("fifo-size", 1<<20, "pipe size of each CPU's FIFO, bytes (the consumer reads 1 MiB at a time)")
	consumerRT = flag.Int("consumer-rt", 0, "run each FIFO's consumer thread under SCHED_FIFO at this priority (0: the fair scheduler)")
	variants   = flag.String("variants", "", "more vtrace binaries, each measured as a reader of its own: name=path, comma-separated")
	repeat     = flag.Int("repeat", 1, "runs of each reader per configuration, taking turns; the table sums them")
)

const instName = "vtrace-bench"

func main() {
	flag.Parse()
	log.SetFlags(0)
	root, err := guest.FindTracefs("")
	check(err)
	inst := filepath.Join(root, "instances", instName)
	os.Remove(inst)
	check(os.Mkdir(inst, 0o755))
	defer os.Remove(inst)
	defer put(inst, "events/enable", "0")
	defer put(inst, "tracing_on", "0")
	cpus, err := guest.OnlineCPUs()
	check(err)
	if *percent >= 0 {
		put(inst, "buffer_percent", strconv.Itoa(*percent))
	}
	defaultKB := strings.TrimSpace(get(inst, "buffer_size_kb"))
	fmt.Printf("# instance %s: buffer_percent %s; load: taskset -c N dd if=/dev/zero of=/dev/null bs=256 on each of %d CPUs, %d s;"+
		" full = every event enabled, quarter = %s; FIFOs of %d bytes read 1 MiB at a time\n",
		instName, strings.TrimSpace(get(inst, "buffer_percent")), len(cpus), *seconds, *quarterEv, *fifoSize)

	var results []result
	idled := map[string]bool{}
	for _, kb := range list(*buffers) {
		if kb == "default" {
			kb = defaultKB
		}
		put(inst, "buffer_size_kb", kb)
		for _, load := range list(*loads) {
			sums := map[string]*result{}
			for range *repeat {
				for _, name := range list(*readers) {
					r := measure(inst, cpus, name, kb, load, !idled[name])
					idled[name] = true
					if sums[name] == nil {
						sums[name] = &result{name: name, kb: kb, load: load, idleWakeups: -1}
					}
					sums[name].add(r)
				}
			}
			for _, name := range list(*readers) {
				results = append(results, *sums[name])
			}
		}
	}
	put(inst, "buffer_size_kb", defaultKB)

	fmt.Printf("| buffer KiB/CPU | load | reader | runs | MB/s | MB per CPU s (each run) | M events per CPU s | CPU s | events lost (overrun) | events received | peak RSS MiB | wake-ups/s loaded | wake-ups in %d s idle |\n", *idle)
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		mb, mev := float64(r.bytes)/1e6, float64(r.read)/1e6
		idle := "-"
		if r.idleWakeups >= 0 {
			idle = strconv.FormatInt(r.idleWakeups, 10)
		}
		var each []string
		for _, x := range r.each {
			each = append(each, fmt.Sprintf("%.0f", x))
		}
		fmt.Printf("| %s | %s | %s | %d | %.1f | %.0f (%s) | %.2f | %.2f | %d | %d | %.1f | %.0f | %s |\n", r.kb, r.load, r.name, r.runs,
			mb/r.elapsed.Seconds(), mb/r.cpu, strings.Join(each, ", "), mev/r.cpu, r.cpu, r.overrun, r.read, float64(r.rssKB)/1024,
			float64(r.loadWakeups)/r.elapsed.Seconds(), idle)
	}
}

type result struct {
	name, kb, load string
	bytes          int64
	elapsed        time.Duration
	cpu            float64 // seconds, user + system, of the reader processes
	overrun        int64
	read           int64
	rssKB          int64 // peak resident set of the reader processes (VmHWM)
	idleWakeups    int64 // -1: not measured
	loadWakeups    int64 // voluntary context switches under load
	runs           int
	each           []float64 // MB per CPU second of each run
}

// add sums run r into s: counts and times add up, the peak RSS is the
// largest, the idle wake-ups those of the run that measured them.
func (s *result) add(r result) {
	s.bytes += r.bytes
	s.elapsed += r.elapsed
	s.cpu += r.cpu
	s.overrun += r.overrun
	s.read += r.read
	s.rssKB = max(s.rssKB, r.rssKB)
	if r.idleWakeups >= 0 {
		s.idleWakeups = r.idleWakeups
	}
	s.loadWakeups += r.loadWakeups
	s.runs++
	s.each = append(s.each, float64(r.bytes)/1e6/r.cpu)
}

// reader is a started reader: its processes and how to end it.
type reader struct {
	pids []int
	stop func()
}

func measure(inst string, cpus []int, name, kb, load string, measureIdle bool) result {
	start := map[string]func(inst, fifos string, cpus []int) reader{"agent": startAgent, "c": startCAgent, "cat": startCats,
		"agent-rt": func(inst, fifos string, cpus []int) reader {
			return startVtrace(*vtrace, inst, fifos, "--rt-priority", "1")
		},
		"agent2": func(inst, fifos string, cpus []int) reader { return startVtrace(*vtrace2, inst, fifos) }}[name]
	for _, v := range list(*variants) {
		if n, bin, ok := strings.Cut(v, "="); ok && n == name {
			start = func(inst, fifos string, cpus []int) reader { return startVtrace(bin, inst, fifos) }
		}
	}
	if start == nil {
		log.Fatalf("unknown reader %q (want agent, agent-rt, c, cat, agent2 or a name of -variants)", name)
	}
	put(inst, "tracing_on", "0")
	put(inst, "events/enable", "0")
	put(inst, "trace", "") // empties the buffer and resets its counters
	fifos, err := os.MkdirTemp("", "vtrace-bench-")
	check(err)
	defer os.RemoveAll(fifos)
	for _, n := range portNames(cpus) {
		check(sys.Mkfifo(filepath.Join(fifos, n+".in"), 0o600))
		check(sys.Mkfifo(filepath.Join(fifos, n+".out"), 0o600))
	}
	var received atomic.Int64
	var files []*os.File
	var wg sync.WaitGroup
	for _, cpu := range cpus {
		f, err := os.OpenFile(filepath.Join(fifos, channel.Data(cpu)+".out"), os.O_RDWR, 0)
		check(err)
		rc, err := f.SyscallConn() // not f.Fd(): that makes reads blocking, and Close could not end them
		check(err)
		check(rc.Control(func(fd uintptr) { _, err = sys.SetPipeSize(int(fd), *fifoSize) }))
		check(err)
		files = append(files, f)
		wg.Add(1)
		go func() { // the fast consumer
			defer wg.Done()
			if *consumerRT > 0 {
				runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
				check(sys.SetThreadSched(0, sys.Sched{Policy: unix.SCHED_FIFO, Priority: uint32(*consumerRT), ResetOnFork: true}))
			}
			buf := make([]byte, 1<<20)
			for {
				n, err := f.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	r := start(inst, fifos, cpus)

	// Idle: tracing on, nothing enabled, so the ring buffer stays empty.
	put(inst, "tracing_on", "1")
	idleWakeups := int64(-1)
	if measureIdle && *idle > 0 {
		time.Sleep(time.Second)
		before := wakeups(r.pids)
		time.Sleep(time.Duration(*idle) * time.Second)
		idleWakeups = wakeups(r.pids) - before
	}

	switch load {
	case "full":
		put(inst, "events/enable", "1")
	case "quarter":
		for _, e := range list(*quarterEv) {
			put(inst, filepath.Join("events", e, "enable"), "1")
		}
	default:
		log.Fatalf("unknown load %q (want full or quarter)", load)
	}
	cpu0 := cpuSeconds(r.pids)
	wake0 := wakeups(r.pids)
	t0 := time.Now()
	var work []*exec.Cmd
	for _, cpu := range cpus {
		c := exec.Command("taskset", "-c", strconv.Itoa(cpu), "dd", "if=/dev/zero", "of=/dev/null", "bs=256")
		check(c.Start())
		work = append(work, c)
	}
	time.Sleep(time.Duration(*seconds) * time.Second)
	for _, c := range work {
		c.Process.Kill()
		c.Wait()
	}
	put(inst, "tracing_on", "0")
	elapsed := time.Since(t0)
	loadWakeups := wakeups(r.pids) - wake0
	// Let the reader take what is left, then stop it.
	for i := 0; i < 100 && entries(inst, cpus) > 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	cpu := cpuSeconds(r.pids) - cpu0 // before stop: the processes are gone after
	rss := peakRSS(r.pids)
	r.stop()
	for _, f := range files {
		f.Close()
	}
	wg.Wait()
	put(inst, "events/enable", "0")
	res := result{name: name, kb: kb, load: load, bytes: received.Load(), elapsed: elapsed, cpu: cpu, rssKB: rss,
		idleWakeups: idleWakeups, loadWakeups: loadWakeups}
	for _, c := range cpus {
		st := stats(inst, c)
		res.overrun += st["overrun"]
		res.read += st["read events"]
	}
	log.Printf("%s KiB, %s load, %s: %d bytes in %v, %.2f CPU s, overrun %d, peak RSS %d KiB, idle wake-ups %d",
		kb, load, name, res.bytes, elapsed.Round(time.Millisecond), cpu, res.overrun, rss, idleWakeups)
	return res
}

func portNames(cpus []int) []string {
	names := []string{channel.Ctl}
	for _, c := range cpus {
		names = append(names, channel.Data(c))
	}
	return names
}

func startAgent(inst, fifos string, cpus []int) reader { return startVtrace(*vtrace, inst, fifos) }

func startVtrace(bin, inst, fifos string, extra ...string) reader {
	args := append([]string{"guest", "agent", "--tracefs", inst, "--ports-dir", fifos}, strings.Fields(*agentArgs)...)
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	return startOrder(fifos, cmd)
}

// startCAgent runs the kernel's C agent, whose paths are fixed
// (/sys/kernel/debug/tracing/per_cpu/cpuN/trace_pipe_raw,
// /dev/virtio-ports/NAME), in a mount namespace of its own where those
// paths lead to the bench's instance and FIFOs; nothing outside changes.
func startCAgent(inst, fifos string, cpus []int) reader {
	if *cAgent == "" {
		log.Fatal("reader c needs -c-agent (scripts/build-c-agent.sh -w builds it)")
	}
	script := `set -e
mount -t tmpfs bench /sys/kernel/debug
ln -s "$1" /sys/kernel/debug/tracing
mount -t tmpfs bench /dev
mkdir /dev/virtio-ports
for f in "$2"/*.in; do n=$(basename "$f" .in); ln -s "$2/$n.out" "/dev/virtio-ports/$n"; done
ln -sf "$2/agent-ctl-path.in" /dev/virtio-ports/agent-ctl-path
exec "$3"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", inst, fifos, *cAgent)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	return startOrder(fifos, cmd)
}

// startOrder sends the start order to the agent cmd (after opening the
// control FIFO, which it reads) and returns it as a reader.
func startOrder(fifos string, cmd *exec.Cmd) reader {
	ctl, err := os.OpenFile(filepath.Join(fifos, channel.Ctl+".in"), os.O_RDWR, 0)
	check(err)
	time.Sleep(200 * time.Millisecond) // let it open its files
	_, err = ctl.WriteString("1\n")
	check(err)
	return reader{pids: []int{cmd.Process.Pid}, stop: func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			log.Printf("%s: %v", cmd.Path, err)
		}
		ctl.Close()
	}}
}

func startCats(inst, fifos string, cpus []int) reader {
	var cmds []*exec.Cmd
	var pids []int
	for _, cpu := range cpus {
		out, err := os.OpenFile(filepath.Join(fifos, channel.Data(cpu)+".out"), os.O_WRONLY, 0)
		check(err)
		// cat ends when read(2) of trace_pipe_raw returns 0, which it does
		// under load; the loop restarts it.
		c := exec.Command("sh", "-c", "while :; do cat "+tracefs.PerCPU(inst, cpu, "trace_pipe_raw")+"; done")
		c.Stdout = out
		c.Stderr = os.Stderr
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // stop kills sh and its cat
		check(c.Start())
		out.Close()
		cmds = append(cmds, c)
		pids = append(pids, c.Process.Pid)
	}
	return reader{pids: pids, stop: func() {
		for _, c := range cmds {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Wait()
		}
	}}
}

// cpuSeconds sums the time on CPU (user + system) of the processes' live
// threads (schedstat, nanoseconds), of their reaped children (/proc/PID/stat,
// clock ticks) and of their live children.
func cpuSeconds(pids []int) float64 {
	var s float64
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				s += float64(ns) / 1e9
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
			for _, i := range []int{13, 14} { // cutime cstime
				n, _ := strconv.ParseInt(f[i], 10, 64)
				s += float64(n) / 100 // USER_HZ
			}
		}
		s += cpuSeconds(children(pid))
	}
	return s
}

// peakRSS sums VmHWM of the processes and their live children, in KiB.
func peakRSS(pids []int) int64 {
	var kb int64
	for _, pid := range pids {
		kb += statusField(pid, "VmHWM:")
		kb += peakRSS(children(pid))
	}
	return kb
}

func children(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var kids []int
	for _, k := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(k); err == nil {
			kids = append(kids, n)
		}
	}
	return kids
}

// wakeups sums the voluntary context switches of every thread.
func wakeups(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		for _, t := range tasks {
			n += field(t, "voluntary_ctxt_switches:")
		}
	}
	return n
}

func statusField(pid int, name string) int64 {
	return field(fmt.Sprintf("/proc/%d/status", pid), name)
}

// field is the number after name in a /proc status file (0 if none).
func field(path, name string) int64 {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			k, _ := strconv.ParseInt(strings.Fields(v + " 0")[0], 10, 64)
			return k
		}
	}
	return 0
}

func entries(inst string, cpus []int) int64 {
	var n int64
	for _, c := range cpus {
		n += stats(inst, c)["entries"]
	}
	return n
}

func stats(inst string, cpu int) map[string]int64 {
	b, err := os.ReadFile(tracefs.PerCPU(inst, cpu, "stats"))
	check(err)
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func get(inst, file string) string {
	b, err := os.ReadFile(filepath.Join(inst, file))
	check(err)
	return string(b)
}

func put(inst, file, s string) {
	if err := os.WriteFile(filepath.Join(inst, file), []byte(s), 0); err != nil {
		log.Fatalf("write %s: %v", file, err)
	}
}

func check(err error) {
	if err != nil {
		_, file, line, _ := runtime.Caller(1)
		log.Fatalf("%s:%d: %v", filepath.Base(file), line, err)
	}
}
