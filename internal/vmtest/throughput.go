package vmtest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"time"
)

// Throughput is one run of zeros pushed through a port by the guest's dd.
type Throughput struct {
	Bytes int64
	Host  time.Duration // from sending the command to the host's last byte
	Guest time.Duration // dd's run by the guest's clock (10 ms resolution)
}

// MBps returns the throughput the host saw, in MB/s (10^6 bytes).
func (p Throughput) MBps() float64 { return float64(p.Bytes) / p.Host.Seconds() / 1e6 }

// PortThroughput measures the raw throughput of port (e.g. trace-path-cpu0):
// the guest writes count blocks of blockSize zeros into it with dd while the
// host reads Path(port)+".out". Nothing else may hold the port in the guest
// (boot with NoAgent, or send kill-agent first), nor read it on the host.
func (g *Guest) PortThroughput(port string, count, blockSize int) (Throughput, error) {
	want := int64(count) * int64(blockSize)
	f, err := os.Open(g.Path(port) + ".out")
	if err != nil {
		return Throughput{}, fmt.Errorf("measure port %s: %w", port, err)
	}
	defer f.Close()
	type result struct {
		n    int64
		last time.Time
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		buf := make([]byte, 1<<20)
		for r.n < want {
			n, err := f.Read(buf)
			r.n += int64(n)
			r.last = time.Now()
			if err != nil {
				r.err = err
				break
			}
		}
		done <- r
	}()

	begin := time.Now()
	// Generous: TCG moves tens of MB/s; allow for 1 MB/s.
	bound := g.opts.CommandTimeout + time.Duration(want/1e6)*time.Second
	out, err := g.CommandWithin(bound, "ddport", port, strconv.Itoa(count), strconv.Itoa(blockSize))
	if err != nil {
		return Throughput{}, err
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(g.opts.CommandTimeout):
		f.Close() // ends the reader
		r = <-done
		return Throughput{}, fmt.Errorf("measure port %s: the host read %d of %d bytes", port, r.n, want)
	}
	if r.err != nil && !errors.Is(r.err, io.EOF) {
		return Throughput{}, fmt.Errorf("measure port %s: read: %w", port, r.err)
	}
	m := regexp.MustCompile(`VTRACE-DD .*bytes=(\d+) seconds=([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		return Throughput{}, fmt.Errorf("measure port %s: no VTRACE-DD line in %q", port, out)
	}
	secs, _ := strconv.ParseFloat(m[2], 64)
	if r.n != want {
		return Throughput{}, fmt.Errorf("measure port %s: the host read %d bytes, the guest wrote %s", port, r.n, m[1])
	}
	return Throughput{Bytes: r.n, Host: r.last.Sub(begin), Guest: time.Duration(secs * float64(time.Second))}, nil
}
