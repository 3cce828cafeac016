// Command benchagent measures `vtrace guest agent` against the plainest
// alternative, one `cat per_cpu/cpuN/trace_pipe_raw > FIFO` per CPU, under
// the same heavy event load in the same run: bytes per second, CPU seconds
// per MB, events lost (overrun) and wake-ups while the ring buffer is
// empty. It needs root and tracefs; scripts/bench-agent.sh runs it.
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
)

var (
	vtrace  = flag.String("vtrace", "bin/vtrace", "the vtrace binary")
	seconds = flag.Int("seconds", 10, "length of each loaded run")
	idle    = flag.Int("idle", 5, "length of the empty-buffer run")
	percent = flag.Int("buffer-percent", -1, "set the instance's buffer_percent (default: leave the kernel's)")
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
	b, err := os.ReadFile(filepath.Join(inst, "buffer_percent"))
	check(err)
	kb, err := os.ReadFile(filepath.Join(inst, "buffer_size_kb"))
	check(err)
	fmt.Printf("# instance %s: buffer_percent %s, buffer_size_kb %s; all events; load: taskset -c N dd if=/dev/zero of=/dev/null bs=256 per CPU\n",
		instName, strings.TrimSpace(string(b)), strings.TrimSpace(string(kb)))

	agent := measure(inst, cpus, "agent", startAgent)
	cat := measure(inst, cpus, "cat", startCats)

	fmt.Printf("| reader | MB/s | M events/s | CPU s | CPU s per MB | CPU s per M events | events lost (overrun) | events received | wake-ups in %d s idle |\n", *idle)
	fmt.Printf("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range []result{agent, cat} {
		mb, mev := float64(r.bytes)/1e6, float64(r.read)/1e6
		fmt.Printf("| %s | %.1f | %.2f | %.2f | %.4f | %.3f | %d | %d | %d |\n", r.name, mb/r.elapsed.Seconds(), mev/r.elapsed.Seconds(),
			r.cpu, r.cpu/mb, r.cpu/mev, r.overrun, r.read, r.idleWakeups)
	}
}

type result struct {
	name        string
	bytes       int64
	elapsed     time.Duration
	cpu         float64 // seconds, user + system, of the reader processes
	overrun     int64
	read        int64
	idleWakeups int64
}

// reader is a started reader: its processes and how to end it.
type reader struct {
	pids []int
	stop func()
}

func measure(inst string, cpus []int, name string, start func(inst, fifos string, cpus []int) reader) result {
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
		files = append(files, f)
		wg.Add(1)
		go func() { // the fast consumer
			defer wg.Done()
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
	time.Sleep(time.Second)
	before := wakeups(r.pids)
	time.Sleep(time.Duration(*idle) * time.Second)
	idleWakeups := wakeups(r.pids) - before

	// Loaded: every event enabled, one busy writer per CPU.
	put(inst, "events/enable", "1")
	cpu0 := cpuSeconds(r.pids)
	t0 := time.Now()
	var load []*exec.Cmd
	for _, cpu := range cpus {
		c := exec.Command("taskset", "-c", strconv.Itoa(cpu), "dd", "if=/dev/zero", "of=/dev/null", "bs=256")
		check(c.Start())
		load = append(load, c)
	}
	time.Sleep(time.Duration(*seconds) * time.Second)
	for _, c := range load {
		c.Process.Kill()
		c.Wait()
	}
	put(inst, "tracing_on", "0")
	elapsed := time.Since(t0)
	// Let the reader take what is left, then stop it.
	for i := 0; i < 100 && entries(inst, cpus) > 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	cpu := cpuSeconds(r.pids) - cpu0 // before stop: the processes are gone after
	r.stop()
	for _, f := range files {
		f.Close()
	}
	wg.Wait()
	res := result{name: name, bytes: received.Load(), elapsed: elapsed, cpu: cpu, idleWakeups: idleWakeups}
	for _, c := range cpus {
		st := stats(inst, c)
		res.overrun += st["overrun"]
		res.read += st["read events"]
	}
	log.Printf("%s: %d bytes in %v, %.2f CPU s, overrun %d, idle wake-ups %d", name, res.bytes, elapsed.Round(time.Millisecond), cpu, res.overrun, idleWakeups)
	return res
}

func portNames(cpus []int) []string {
	names := []string{channel.Ctl}
	for _, c := range cpus {
		names = append(names, channel.Data(c))
	}
	return names
}

func startAgent(inst, fifos string, cpus []int) reader {
	cmd := exec.Command(*vtrace, "guest", "agent", "--tracefs", inst, "--ports-dir", fifos)
	cmd.Stderr = os.Stderr
	check(cmd.Start())
	ctl, err := os.OpenFile(filepath.Join(fifos, channel.Ctl+".in"), os.O_RDWR, 0)
	check(err)
	_, err = ctl.WriteString("1\n")
	check(err)
	return reader{pids: []int{cmd.Process.Pid}, stop: func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			log.Printf("agent: %v", err)
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

// cpuSeconds sums user and system time of the processes (all threads),
// of their reaped children and of their live children.
func cpuSeconds(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, k := range strings.Fields(string(kids)) {
			if n, err := strconv.Atoi(k); err == nil {
				ticks += int64(cpuSeconds([]int{n}) * 100)
			}
		}
	}
	return float64(ticks) / 100 // USER_HZ
}

// wakeups sums the voluntary context switches of every thread.
func wakeups(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					k, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					n += k
				}
			}
		}
	}
	return n
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
