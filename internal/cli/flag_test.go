package cli

import (
	"errors"
	"strings"
	"testing"
)

func TestParseHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-s", "1M", "-h"}, {"-oh"}} {
		o := NewAgentOptions()
		if _, err := Parse(o.Flags(), args); !errors.Is(err, ErrHelp) {
			t.Errorf("%q: %v, want ErrHelp", args, err)
		}
	}
}

func TestWriteFlags(t *testing.T) {
	var b strings.Builder
	if err := WriteFlags(&b, NewAgentOptions().Flags()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  -o, --stdout   ", // a bool shows no type
		"  -s, --pipe-size size   ",
		"(default 1M)",
		`(default "/dev/virtio-ports")`,
		"      --drain-timeout duration   ",
		"  -h, --help   ",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("flags' help lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "(default false)") || strings.Contains(b.String(), `(default "")`) {
		t.Errorf("flags' help shows zero defaults:\n%s", b.String())
	}
}
