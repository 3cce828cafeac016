package main

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestTargetResolve(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target target
		want   string
		usage  bool
	}{
		{name: "domain", target: target{domain: "vm1"}, want: filepath.Join("/var/lib/vtrace", "vm1")},
		{name: "dir", target: target{dir: "/tmp/vt"}, want: "/tmp/vt"},
		{name: "both", target: target{domain: "vm1", dir: "/tmp/vt"}, usage: true},
		{name: "neither", usage: true},
		{name: "hostile", target: target{domain: "../etc"}, usage: true},
		{name: "slash", target: target{domain: "a/b"}, usage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.target.resolve()
			var u usageError
			if tc.usage != errors.As(err, &u) {
				t.Fatalf("resolve: got %q, %v; want usage error %v", got, err, tc.usage)
			}
			if !tc.usage && got != tc.want {
				t.Errorf("resolve: got %q, want %q", got, tc.want)
			}
		})
	}
}
