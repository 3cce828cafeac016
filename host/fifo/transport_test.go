package fifo

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
)

// listen makes the unix sockets of names in dir, listening as qemu's
// chardevs do, and closes them at the end of the test (leaving the files).
func listen(t *testing.T, dir string, names ...string) []*net.UnixListener {
	t.Helper()
	var ls []*net.UnixListener
	for _, n := range names {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, n), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		t.Cleanup(func() { l.Close() })
		ls = append(ls, l)
	}
	return ls
}

// TestSocketTransport checks that a directory of channel sockets is found
// as such, that Open connects to them (data reaches the listener's
// client both ways), and that TraceCPUs and Names list them.
func TestSocketTransport(t *testing.T) {
	dir := t.TempDir()
	if got := Detect(dir); got != FIFOs {
		t.Errorf("Detect of an empty directory: %v, want FIFOs", got)
	}
	names := channel.Names(2)
	ls := listen(t, dir, names...) // agent-ctl-path, trace-path-cpu0, trace-path-cpu1
	if got := Detect(dir); got != Sockets {
		t.Errorf("Detect: %v, want unix sockets", got)
	}
	if got, want := ReadPath(dir, channel.Ctl), filepath.Join(dir, channel.Ctl); got != want {
		t.Errorf("ReadPath: %s, want %s", got, want)
	}
	if got, want := WritePath(dir, channel.Ctl), filepath.Join(dir, channel.Ctl); got != want {
		t.Errorf("WritePath: %s, want %s", got, want)
	}
	cpus, err := TraceCPUs(dir)
	if err != nil || !slices.Equal(cpus, []int{0, 1}) {
		t.Errorf("TraceCPUs: %v, %v; want [0 1]", cpus, err)
	}
	if got, err := Names(dir); err != nil || !slices.Equal(got, names) {
		t.Errorf("Names: %q, %v; want %q", got, err, names)
	}

	// The control channel: one connection, both directions.
	fd, err := Open(WritePath(dir, channel.Ctl), sys.FIFOWriteNonblock)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(fd)
	if !IsSocketFD(fd) {
		t.Error("IsSocketFD of a connected control channel: false")
	}
	c, err := ls[0].AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("guest")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sys.Poll(fd, sys.In, nil, -1); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := sys.Read(fd, buf); err != nil || string(buf[:n]) != "guest" {
		t.Errorf("read from the channel: %q, %v", buf[:n], err)
	}
	if _, err := sys.Write(fd, []byte("host")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "host" {
		t.Errorf("write to the channel: the listener read %q, %v", buf[:n], err)
	}

	// A data channel reads as a pipe: all the bytes, then end of file
	// once the peer closed.
	r, err := Open(ReadPath(dir, channel.Data(0)), sys.FIFOReadNonblock)
	if err != nil {
		t.Fatal(err)
	}
	if IsSocketFD(r) {
		t.Error("a data channel opened for reading is the socket, want a pipe")
	}
	if got, err := SetBuffer(r, 1<<16); err != nil || got != 1<<16 {
		t.Errorf("SetBuffer of the pipe: %d, %v; want 64 KiB", got, err)
	}
	d, err := ls[1].AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	// 4 MiB, many times the pipe: the pump waits for room again and again.
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18)
	go func() {
		d.Write(want)
		d.Close()
	}()
	var got []byte
	big := make([]byte, 64<<10)
	for {
		n, err := sys.Read(r, big)
		if errors.Is(err, sys.EAGAIN) {
			sys.Poll(r, sys.In, nil, -1)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		got = append(got, big[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes through the data channel, want the %d written", len(got), len(want))
	}
	sys.Close(r)

	// The reader closing ends the connection.
	r, err = Open(ReadPath(dir, channel.Data(1)), sys.FIFOReadNonblock)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ls[2].AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	sys.Close(r)
	if n, err := e.Read(buf); n != 0 || err == nil {
		t.Errorf("the listener's read after the reader closed: %d, %v; want end of file", n, err)
	}
	e.Close()

	// Nobody listens any more: the error says so.
	ls[2].Close()
	if _, err := Open(ReadPath(dir, channel.Data(1)), sys.FIFOReadNonblock); !errors.Is(err, ErrNotListening) {
		t.Errorf("Open of a socket nobody listens on: %v, want ErrNotListening", err)
	}
}

func TestPrepareAndRemoveSockets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vm1")
	names := channel.Names(1)
	r, err := PrepareSockets(dir, names, Options{Group: -1})
	if err != nil || !slices.Equal(r.Created, []string{dir}) {
		t.Fatalf("PrepareSockets: %+v, %v", r, err)
	}
	if m := mode(t, dir); m != fs.ModeDir|DirPerm {
		t.Errorf("dir mode %v, want %v", m, fs.ModeDir|DirPerm)
	}
	listen(t, dir, names...)
	r, err = AdjustSockets(dir, names, Options{Group: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if m := mode(t, filepath.Join(dir, n)); m != fs.ModeSocket|FIFOPerm {
			t.Errorf("%s: mode %v, want %v", n, m, fs.ModeSocket|FIFOPerm)
		}
	}
	// A regular file where a socket goes is refused, and kept.
	reg := filepath.Join(dir, channel.Data(1))
	os.WriteFile(reg, []byte("mine"), 0o600)
	for _, f := range []func(string, []string, Options) (Report, error){PrepareSockets, RemoveSockets} {
		if _, err := f(dir, channel.Names(2), Options{Group: -1}); err == nil || !strings.Contains(err.Error(), reg) {
			t.Errorf("error %v, want a refusal naming %s", err, reg)
		}
	}
	os.Remove(reg)
	r, err = RemoveSockets(dir, names, Options{Group: -1})
	if err != nil || len(r.Removed) != len(names)+1 {
		t.Errorf("RemoveSockets: %+v, %v; want the sockets and the directory removed", r, err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left: %v", dir, err)
	}
}

func TestSocketPathTooLong(t *testing.T) {
	dir := "/var/lib/vtrace/" + strings.Repeat("d", 100)
	if _, err := SocketPath(dir, channel.Ctl); err == nil || !strings.Contains(err.Error(), "--dir") {
		t.Errorf("SocketPath of a long path: %v, want an error pointing to --dir", err)
	}
	if _, err := PrepareSockets(dir, channel.Names(1), Options{Group: -1, DryRun: true}); err == nil {
		t.Error("PrepareSockets took a socket path too long for an address")
	}
}
