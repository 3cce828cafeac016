// Package qmp asks a running qemu which host threads run its vCPUs, over
// the QEMU Machine Protocol (QMP): a unix socket given to qemu with
// `-qmp unix:PATH,server=on,wait=off`, or the same command passed through
// libvirt's qemu-monitor-command. Replies are bounded and checked: qemu
// runs the guest, so what it says is not trusted further than the numbers
// it gives.
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"time"

	"github.com/vtrace/vtrace/proto/clip"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// QueryCPUsFast is the QMP command whose reply names each vCPU's thread.
const QueryCPUsFast = `{"execute":"query-cpus-fast"}`

// maxLine bounds one QMP message.
const maxLine = 1 << 20

// DefaultTimeout bounds a whole conversation when ctx has no deadline.
const DefaultTimeout = 5 * time.Second

// VCPU is one guest CPU and the host thread (its TID) that runs it.
type VCPU struct {
	CPU    int
	Thread int
}

// VCPUThreads connects to the QMP socket at path, negotiates capabilities
// and returns the vCPUs of query-cpus-fast, ordered by CPU.
func VCPUThreads(ctx context.Context, path string) ([]VCPU, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("ask qemu for its vCPU threads: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	next := func() (map[string]json.RawMessage, error) {
		for sc.Scan() {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				return nil, fmt.Errorf("read QMP message: %w", err)
			}
			if _, ev := m["event"]; ev {
				continue
			}
			return m, nil
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("qemu closed the QMP socket")
	}
	fail := func(err error) ([]VCPU, error) {
		return nil, fmt.Errorf("ask qemu at %s for its vCPU threads: %w", path, err)
	}
	greeting, err := next()
	if err != nil {
		return fail(err)
	}
	if _, ok := greeting["QMP"]; !ok {
		return fail(errors.New("no QMP greeting: not a QMP socket"))
	}
	for _, cmd := range []string{`{"execute":"qmp_capabilities"}`, QueryCPUsFast} {
		if _, err := conn.Write([]byte(cmd + "\n")); err != nil {
			return fail(err)
		}
		m, err := next()
		if err != nil {
			return fail(err)
		}
		if cmd == QueryCPUsFast {
			b, _ := json.Marshal(m)
			v, err := ParseCPUsFast(b)
			if err != nil {
				return fail(err)
			}
			return v, nil
		}
		if e, ok := m["error"]; ok {
			return fail(fmt.Errorf("qmp_capabilities: %s", clipJSON(e)))
		}
	}
	panic("unreachable")
}

// ParseCPUsFast reads a reply to query-cpus-fast (as QMP or libvirt's
// qemu-monitor-command gives it: {"return": [{"cpu-index": N, "thread-id":
// T, ...}, ...]}) and returns its vCPUs ordered by CPU. CPU numbers are 0
// to tracefs.MaxCPU, each once; thread ids positive.
func ParseCPUsFast(reply []byte) ([]VCPU, error) {
	if len(reply) > maxLine {
		return nil, fmt.Errorf("query-cpus-fast reply of %d bytes", len(reply))
	}
	var r struct {
		Return *[]struct {
			CPU    *int64 `json:"cpu-index"`
			Thread *int64 `json:"thread-id"`
		} `json:"return"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return nil, fmt.Errorf("query-cpus-fast: %w", err)
	}
	if r.Error != nil {
		return nil, fmt.Errorf("query-cpus-fast: qemu says %s", clipJSON(r.Error))
	}
	if r.Return == nil {
		return nil, errors.New("query-cpus-fast: no return")
	}
	var out []VCPU
	seen := map[int64]bool{}
	for _, c := range *r.Return {
		if c.CPU == nil || c.Thread == nil {
			return nil, errors.New("query-cpus-fast: a vCPU without cpu-index or thread-id")
		}
		if *c.CPU < 0 || *c.CPU > tracefs.MaxCPU || seen[*c.CPU] {
			return nil, fmt.Errorf("query-cpus-fast: cpu-index %d out of range or twice", *c.CPU)
		}
		if *c.Thread <= 0 || *c.Thread > math.MaxInt32 {
			return nil, fmt.Errorf("query-cpus-fast: thread-id %d of vCPU %d", *c.Thread, *c.CPU)
		}
		seen[*c.CPU] = true
		out = append(out, VCPU{CPU: int(*c.CPU), Thread: int(*c.Thread)})
	}
	if len(out) == 0 {
		return nil, errors.New("query-cpus-fast: no vCPUs")
	}
	slices.SortFunc(out, func(a, b VCPU) int { return a.CPU - b.CPU })
	return out, nil
}

// clipJSON quotes what qemu said, cut short.
func clipJSON(b []byte) string { return fmt.Sprintf("%q", clip.Text(b, 200)) }
