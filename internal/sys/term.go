package sys

import "golang.org/x/sys/unix"

// IsTerminal reports whether fd is a terminal (the TCGETS ioctl succeeds).
func IsTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
