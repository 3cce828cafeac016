package fifo

import (
	"errors"

	"github.com/vtrace/vtrace/internal/sys"
)

// pumpChunk is the most one splice(2) of the pump moves.
const pumpChunk = 1 << 20

// openSocketReader connects to the channel socket at path and returns the
// read end of a pipe that a goroutine fills from the socket, so that a
// reader sees what it sees on a FIFO: splice(2) into a file (which needs a
// pipe on one side), FIONREAD, poll, and end of file once the socket's
// peer closes and the pipe is drained. The goroutine ends, closing the
// socket, once the reader closes the pipe or the socket ends.
func openSocketReader(path string) (int, error) {
	sock, err := connect(path)
	if err != nil {
		return -1, err
	}
	r, w, _, err := sys.Pipe(0)
	if err != nil {
		sys.Close(sock)
		return -1, err
	}
	go pump(sock, w)
	return r, nil
}

// pump moves what sock receives into the pipe w until sock ends (end of
// file or an error) or the pipe's reader goes away, then closes both.
func pump(sock, w int) {
	defer sys.Close(sock)
	defer sys.Close(w)
	readable := false // the socket polled readable since the last splice that moved data
	for {
		n, err := sys.Splice(sock, w, pumpChunk, sys.SpliceNonblock)
		switch {
		case n > 0:
			readable = false
			continue
		case err == nil:
			return // the socket's peer closed: the reader sees end of file
		case !errors.Is(err, sys.EAGAIN):
			return // EPIPE: the reader closed the pipe
		}
		if readable {
			// Data waits but the pipe has no room: wait for room. An
			// error on the pipe (its reader gone) ends the pump.
			_, rw, err := sys.PollPair(sock, 0, w, int16(sys.Out), -1)
			if err != nil || rw&sys.Err != 0 {
				return
			}
			readable = false
			continue
		}
		rs, rw, err := sys.PollPair(sock, int16(sys.In), w, 0, -1)
		if err != nil || rw&sys.Err != 0 {
			return
		}
		readable = true
		if rs&int16(sys.In) == 0 {
			return // hung up or failed with nothing left to read
		}
	}
}
