package cli

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
)

// TestAgentLatencyFlag: --latency takes a duration, defaults to the
// agent's own, and a negative one is a usage error before the agent
// touches anything.
func TestAgentLatencyFlag(t *testing.T) {
	o := NewAgentOptions()
	if o.Latency != guest.DefaultLatency {
		t.Errorf("default --latency %v, want %v", o.Latency, guest.DefaultLatency)
	}
	for in, want := range map[string]time.Duration{"250ms": 250 * time.Millisecond, "0": 0, "2s": 2 * time.Second} {
		o := NewAgentOptions()
		if _, err := Parse(o.Flags(), []string{"--latency", in}); err != nil || o.Latency != want {
			t.Errorf("--latency %s: %v, %v; want %v", in, o.Latency, err, want)
		}
	}
	if _, err := Parse(NewAgentOptions().Flags(), []string{"--latency", "soon"}); !IsUsage(err) {
		t.Errorf("--latency soon: %v, want a usage error", err)
	}
	o = NewAgentOptions()
	o.Latency = -time.Second
	err := RunAgent(context.Background(), *o, io.Discard, "test")
	if !IsUsage(err) || !strings.Contains(err.Error(), "--latency") {
		t.Errorf("--latency -1s: %v, want a usage error naming --latency", err)
	}
}
