package tracedat

import (
	"os"
	"testing"

	"github.com/vtrace/vtrace/proto/ringbuf"
)

// BenchmarkPageCheck is the cost of checking pages on their way into a
// trace.dat: the page reader's parse of real sched and irq pages, bytes of
// pages per second.
func BenchmarkPageCheck(b *testing.B) {
	raw, err := os.ReadFile("../../proto/ringbuf/testdata/sched-irq.pages")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, copyBufSize)
	for len(buf)+len(raw) <= copyBufSize {
		buf = append(buf, raw...)
	}
	c := &pageCheck{l: ringbuf.DefaultLayout(), res: &Result{CPUs: make([]CPUResult, 1)}}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		c.pages(buf)
	}
	if c.res.CPUs[0].BadPages != 0 {
		b.Fatalf("%d real pages refused", c.res.CPUs[0].BadPages)
	}
}
