package main

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGuestsResolve: domains and --dir (DIR or NAME=DIR) in the order
// given; names safe as directory names and distinct, or a usage error.
func TestGuestsResolve(t *testing.T) {
	for _, tc := range []struct {
		name  string
		g     guests
		want  []guestDir
		usage bool
	}{
		{name: "domains", g: guests{domains: []string{"vm1", "vm2"}}, want: []guestDir{
			{name: "vm1", dir: filepath.Join("/var/lib/vtrace", "vm1"), domain: "vm1"},
			{name: "vm2", dir: filepath.Join("/var/lib/vtrace", "vm2"), domain: "vm2"}}},
		{name: "dirs", g: guests{dirs: []string{"/tmp/vt-web", "db=/tmp/x", "/tmp/a=b/c"}}, want: []guestDir{
			{name: "vt-web", dir: "/tmp/vt-web"}, {name: "db", dir: "/tmp/x"}, {name: "c", dir: "/tmp/a=b/c"}}},
		{name: "both", g: guests{domains: []string{"vm1"}, dirs: []string{"w=/tmp/w"}}, want: []guestDir{
			{name: "vm1", dir: filepath.Join("/var/lib/vtrace", "vm1"), domain: "vm1"}, {name: "w", dir: "/tmp/w"}}},
		{name: "none", usage: true},
		{name: "twice", g: guests{dirs: []string{"/a/x", "/b/x"}}, usage: true},
		{name: "domain twice", g: guests{domains: []string{"vm1"}, dirs: []string{"vm1=/tmp/w"}}, usage: true},
		{name: "hostile domain", g: guests{domains: []string{"../etc"}}, usage: true},
		{name: "hostile name", g: guests{dirs: []string{"..=/tmp/w"}}, usage: true},
		{name: "no dir", g: guests{dirs: []string{"w="}}, usage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.g.resolve()
			var u usageError
			if tc.usage {
				if !errors.As(err, &u) {
					t.Errorf("resolve: %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(guestDir{})); diff != "" {
				t.Errorf("resolve (-want +got):\n%s", diff)
			}
		})
	}
}

// TestQMPFor: a lone --qmp SOCKET serves the one guest; NAME=SOCKET each
// guest; two lone sockets are a usage error.
func TestQMPFor(t *testing.T) {
	f := timelineFlags{qmp: []string{"a=/run/a.sock", "b=/run/b.sock"}}
	for name, want := range map[string]string{"a": "/run/a.sock", "b": "/run/b.sock", "c": ""} {
		if got, err := f.qmpFor(name); err != nil || got != want {
			t.Errorf("qmpFor(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if got, err := (timelineFlags{qmp: []string{"/run/q.sock"}}).qmpFor("x"); err != nil || got != "/run/q.sock" {
		t.Errorf("a lone --qmp: %q, %v", got, err)
	}
	if _, err := (timelineFlags{qmp: []string{"/run/q.sock", "/run/r.sock"}}).qmpFor("x"); err == nil {
		t.Errorf("two lone --qmp: no error")
	}
}
