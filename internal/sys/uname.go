package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// Uname is the `uname -a`-like line trace-cmd records: sysname, nodename,
// release, version and machine, separated by spaces.
func Uname() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", os.NewSyscallError("uname", err)
	}
	s := unix.ByteSliceToString
	return s(u.Sysname[:]) + " " + s(u.Nodename[:]) + " " + s(u.Release[:]) + " " +
		s(u.Version[:]) + " " + s(u.Machine[:]), nil
}

// Release is the running kernel's release, as `uname -r` prints it.
func Release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", os.NewSyscallError("uname", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
