package cli

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// Build is what a binary knows of its own build, from the build
// information the Go toolchain records in it (runtime/debug.ReadBuildInfo).
type Build struct {
	Module   string // module path: github.com/vtrace/vtrace
	Version  string // module version: a tag, a pseudo-version (v0.0.0-DATE-REVISION, +dirty when modified) or "(devel)"; "" when unknown
	Revision string // VCS revision (a git commit); "" when built outside a checkout or with -buildvcs=false
	Time     string // the revision's commit time, RFC 3339
	Modified bool   // the checkout had changes not committed
	Go       string // toolchain version: go1.26.0
	Platform string // GOOS/GOARCH
}

// ReadBuild reads the running binary's Build. A binary without build
// information (none ships so) gives only the Go version.
func ReadBuild() Build {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Build{}
	}
	b := Build{Module: bi.Main.Path, Version: bi.Main.Version, Go: bi.GoVersion}
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos != "" {
		b.Platform = goos + "/" + goarch
	}
	return b
}

// Short is the version in one word, as the handshake tells it to the other
// end: the module version when the build has one, else "devel" and the
// first 12 digits of the revision (and "+dirty"), else "dev".
func (b Build) Short() string {
	if b.Version != "" && b.Version != "(devel)" {
		return b.Version
	}
	if b.Revision == "" {
		return "dev"
	}
	s := "devel-" + b.Revision[:min(12, len(b.Revision))]
	if b.Modified {
		s += "+dirty"
	}
	return s
}

// String is the report of `vtrace version`: the program and its Short
// version, then one line for each fact known.
func (b Build) String() string {
	var sb strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&sb, "  %-9s %s\n", k+":", v)
		}
	}
	line("module", b.Module)
	rev := b.Revision
	if rev != "" && b.Modified {
		rev += " (modified)"
	}
	line("revision", rev)
	line("time", b.Time)
	line("go", strings.TrimSpace(b.Go+" "+b.Platform))
	return sb.String()
}

// Write writes the report of `PROGRAM version`.
func (b Build) Write(w io.Writer, program string) error {
	_, err := fmt.Fprintf(w, "%s %s\n%s", program, b.Short(), b)
	return err
}
