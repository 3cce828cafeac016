package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// usageError marks an error in the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

var version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "vtrace",
		Short:         "Stream ftrace data from a virtual machine to its host",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	guest := &cobra.Command{Use: "guest", Short: "Commands that run inside the guest"}
	guest.AddCommand(newGuestAgentCmd())

	host := &cobra.Command{Use: "host", Short: "Commands that run on the host"}
	host.AddCommand(newHostCmds()...)

	root.AddCommand(guest, host)
	return root
}
