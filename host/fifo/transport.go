package fifo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
)

// Transport is how a domain's channels reach this host. The host commands
// do not choose it: Detect finds it from what setup made in the channel
// directory, and Open, ReadPath and WritePath follow it.
//
// A unix-socket channel differs from a pipe channel in what qemu does
// while no host program is connected: it listens (libvirt's
// <source mode='bind'/>) and accepts one client at a time, and the guest
// port reports its host end closed, so the guest's writes wait (its
// virtio_console driver blocks them, or returns EAGAIN to a non-blocking
// writer) and nothing the guest writes then is dropped. What the guest
// wrote before the client left and the client had not read is gone with
// the connection, as qemu discards the port's queued data when its host
// end closes: a collector must read until the agent's drain ends (as
// collect does) before it lets go of a data socket. One connection carries
// both directions of the control channel.
type Transport int

const (
	// FIFOs are pipe channels: DIR/NAME.in (host to guest) and
	// DIR/NAME.out (guest to host), held open by qemu from its start.
	FIFOs Transport = iota
	// Sockets are unix-socket channels that qemu listens on: DIR/NAME,
	// both directions, hot-pluggable into a running domain.
	Sockets
)

func (t Transport) String() string {
	if t == Sockets {
		return "unix sockets"
	}
	return "FIFOs"
}

// Detect returns the transport of the channels in dir: Sockets when
// DIR/agent-ctl-path or DIR/trace-path-cpu0 is a unix socket, else FIFOs
// (also for a dir that does not exist: opening says what is missing).
func Detect(dir string) Transport {
	for _, n := range []string{channel.Ctl, channel.Data(0)} {
		if isSocket(filepath.Join(dir, n)) {
			return Sockets
		}
	}
	return FIFOs
}

func isSocket(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && st.Mode().Type() == fs.ModeSocket
}

// ReadPath returns the path the host opens to read channel name of dir:
// DIR/NAME when it is a unix socket, else the FIFO DIR/NAME.out.
func ReadPath(dir, name string) string {
	p := filepath.Join(dir, name)
	if isSocket(p) {
		return p
	}
	return p + ".out"
}

// WritePath returns the path the host opens to write to channel name of
// dir: DIR/NAME when it is a unix socket, else the FIFO DIR/NAME.in.
func WritePath(dir, name string) string {
	p := filepath.Join(dir, name)
	if isSocket(p) {
		return p
	}
	return p + ".in"
}

// IsSocketFD reports whether fd is a socket (a channel Open connected to)
// rather than a FIFO.
func IsSocketFD(fd int) bool {
	st, err := sys.FstatFd(fd)
	return err == nil && st.Mode.Type() == fs.ModeSocket
}

// SetBuffer asks for size bytes of kernel buffer on a channel descriptor
// that Open returned: the pipe's size for a FIFO, the receive buffer for
// a socket. It returns what was granted.
func SetBuffer(fd, size int) (int, error) {
	if IsSocketFD(fd) {
		return sys.SetRecvBuffer(fd, size)
	}
	return sys.SetPipeSize(fd, size)
}

// connect opens the unix-socket channel at path: ECONNREFUSED (nobody
// listens: the domain is off, or the socket is left from an earlier run)
// comes back as ErrNotListening with what to do.
func connect(path string) (int, error) {
	fd, err := sys.ConnectUnix(path)
	if errors.Is(err, sys.ECONNREFUSED) {
		return -1, fmt.Errorf("%w: %w: is the domain running with the channels of vtrace host setup --live? "+
			"(a socket left from an earlier run refuses connections; run setup --live again)", err, ErrNotListening)
	}
	if err != nil {
		return -1, accessHint(err)
	}
	return fd, nil
}

// ErrNotListening is returned (wrapped) by Open for a channel socket that
// nobody listens on.
var ErrNotListening = errors.New("no qemu listens on the channel socket")
