package timesync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FileName is the record's name in a capture directory.
const FileName = "clock.json"

// maxRecord bounds the record read back: a day of probes every second.
const maxRecord = 64 << 20

// Record is what a capture keeps of its clock synchronisation: the trace
// clock both sides recorded with, the trace ids written into host.dat and
// trace.dat, the guest's name and the host thread of each of its vCPUs
// (host.dat's GUEST option), every probe, and the fit.
type Record struct {
	Clock        string  `json:"clock"`
	HostTraceID  uint64  `json:"host_trace_id"`
	GuestTraceID uint64  `json:"guest_trace_id"`
	Guest        string  `json:"guest,omitempty"`
	VCPUs        []VCPU  `json:"vcpus,omitempty"`
	Probes       []Probe `json:"probes"`
	Fit          *Fit    `json:"fit,omitempty"` // nil: no fit (no probe answered)
}

// VCPU is a guest CPU and the host thread that runs it.
type VCPU struct {
	CPU    int `json:"cpu"`
	Thread int `json:"thread"`
}

// Save writes r as DIR/clock.json.
func (r *Record) Save(dir string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("save clock record: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save clock record: %w", err)
	}
	return nil
}

// Load reads DIR/clock.json; a capture without one gives an error
// wrapping os.ErrNotExist.
func Load(dir string) (*Record, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxRecord {
		return nil, fmt.Errorf("read %s: over %d bytes", path, maxRecord)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for _, p := range r.Probes {
		if err := p.Check(); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if r.Fit == nil && len(r.Probes) > 0 {
		return nil, fmt.Errorf("read %s: %w", path, errors.New("probes without a fit"))
	}
	return &r, nil
}
