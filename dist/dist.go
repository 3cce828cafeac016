// Package dist holds the files that start the guest agent as a service:
// a systemd unit and the udev rule that starts it when the control port
// appears, a plain init script (busybox init, sysvinit) and an OpenRC
// script. `make install` and `make install-guest` install them with sed;
// the guest binary embeds them for `vtrace-guest install`, which Install
// implements. docs/service.md describes them.
package dist

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

//go:embed vtrace-agent.service 60-vtrace-agent.rules vtrace-agent.sh vtrace-agent.openrc
var files embed.FS

// The names of the files, here and once installed.
const (
	Unit     = "vtrace-agent.service"
	UdevRule = "60-vtrace-agent.rules"
	InitSh   = "vtrace-agent.sh"     // installed as /etc/init.d/vtrace-agent
	OpenRC   = "vtrace-agent.openrc" // installed as /etc/init.d/vtrace-agent
	Binary   = "vtrace-guest"        // the guest binary's name in BINDIR
)

// Render returns file name (one of the constants) with @BINDIR@ replaced
// by bindir, the directory the guest binary is installed in.
func Render(name, bindir string) ([]byte, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return bytes.ReplaceAll(b, []byte("@BINDIR@"), []byte(bindir)), nil
}

// Init is the init system a guest runs.
type Init string

const (
	InitSystemd Init = "systemd"
	InitSysv    Init = "sysv" // busybox init, sysvinit: a plain init script
	InitOpenRC  Init = "openrc"
)

// DetectInit guesses the init system of the tree at root: systemd when it
// runs or is installed, OpenRC when openrc-run is there, else sysv.
func DetectInit(root string) Init {
	for _, p := range []string{"run/systemd/system", "usr/lib/systemd/systemd", "lib/systemd/systemd"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return InitSystemd
		}
	}
	for _, p := range []string{"sbin/openrc-run", "usr/sbin/openrc-run"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			return InitOpenRC
		}
	}
	return InitSysv
}

// Options say where Install puts the guest side.
type Options struct {
	Root   string // the tree to install into ("" or "/": this system)
	Prefix string // the binary goes to Prefix/bin (/usr/local)
	Init   Init   // "" detects it
	Source string // the guest binary to copy ("": the running one)
}

// Placed is one file Install wrote (or Uninstall removed).
type Placed struct {
	Path string // without Root
	What string
}

// plan returns what Install writes for o: the paths (without Root), each
// file's content (nil for the binary) and mode.
func (o Options) plan() ([]planned, error) {
	if o.Prefix == "" {
		o.Prefix = "/usr/local"
	}
	if !filepath.IsAbs(o.Prefix) {
		return nil, fmt.Errorf("check prefix %q: want an absolute path", o.Prefix)
	}
	bindir := filepath.Join(o.Prefix, "bin")
	p := []planned{{path: filepath.Join(bindir, Binary), what: "the guest binary", mode: 0o755}}
	add := func(name, path, what string, mode os.FileMode) error {
		b, err := Render(name, bindir)
		if err != nil {
			return err
		}
		p = append(p, planned{path: path, what: what, data: b, mode: mode})
		return nil
	}
	var err error
	switch o.Init {
	case InitSystemd:
		if err = add(Unit, "/etc/systemd/system/"+Unit, "the systemd unit", 0o644); err == nil {
			err = add(UdevRule, "/etc/udev/rules.d/"+UdevRule, "the udev rule that starts it with the control port", 0o644)
		}
	case InitSysv:
		err = add(InitSh, "/etc/init.d/vtrace-agent", "the init script", 0o755)
	case InitOpenRC:
		err = add(OpenRC, "/etc/init.d/vtrace-agent", "the OpenRC script", 0o755)
	default:
		err = fmt.Errorf("check init system %q: want systemd, sysv or openrc", o.Init)
	}
	return p, err
}

type planned struct {
	path, what string
	data       []byte // nil: the binary
	mode       os.FileMode
}

// place gives the root Install and Uninstall work under ("/" when
// o.Root is "") and the files they write or remove, for o.Init or, when it
// is "", the init system detected under that root.
func (o Options) place() (string, []planned, error) {
	root := o.Root
	if root == "" {
		root = "/"
	}
	if o.Init == "" {
		o.Init = DetectInit(root)
	}
	plan, err := o.plan()
	return root, plan, err
}

// Install copies the guest binary to Root/Prefix/bin/vtrace-guest and
// writes the files that start it for o.Init (detected when ""), replacing
// earlier ones. Each file is written beside its place and renamed over
// it, so a running agent keeps its binary. It returns what it wrote.
func Install(o Options) ([]Placed, error) {
	root, plan, err := o.place()
	if err != nil {
		return nil, err
	}
	src := o.Source
	if src == "" {
		if src, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the running binary: %w", err)
		}
	}
	var done []Placed
	for _, f := range plan {
		dst := filepath.Join(root, f.path)
		if f.data == nil {
			err = copyFile(src, dst, f.mode)
		} else {
			err = writeFile(dst, f.data, f.mode)
		}
		if err != nil {
			return done, err
		}
		done = append(done, Placed{f.path, f.what})
	}
	return done, nil
}

// Uninstall removes what Install would write for o; files already gone
// are not an error.
func Uninstall(o Options) ([]Placed, error) {
	root, plan, err := o.place()
	if err != nil {
		return nil, err
	}
	var done []Placed
	for _, f := range plan {
		err := os.Remove(filepath.Join(root, f.path))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("remove %s: %w", f.what, err)
		}
		done = append(done, Placed{f.path, f.what})
	}
	return done, nil
}

func writeFile(dst string, data []byte, mode os.FileMode) error {
	return replace(dst, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open the binary to install: %w", err)
	}
	defer in.Close()
	return replace(dst, mode, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// replace writes dst through a temporary file in its directory, made with
// the directories above it, and renames it into place.
func replace(dst string, mode os.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	defer os.Remove(f.Name()) // after the rename: no such file
	err = write(f)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	return nil
}
