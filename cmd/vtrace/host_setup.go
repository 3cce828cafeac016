package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newHostSetupCmd() *cobra.Command {
	return &cobra.Command{Use: "setup <domain>", Short: "Add the trace channels to a libvirt domain and make its FIFOs",
		RunE: func(*cobra.Command, []string) error { return errors.New("not yet built") }}
}

func newHostTeardownCmd() *cobra.Command {
	return &cobra.Command{Use: "teardown <domain>", Short: "Remove what setup added",
		RunE: func(*cobra.Command, []string) error { return errors.New("not yet built") }}
}

func newHostQemuArgsCmd() *cobra.Command {
	return &cobra.Command{Use: "qemu-args", Short: "Print the qemu options for the trace channels",
		RunE: func(*cobra.Command, []string) error { return errors.New("not yet built") }}
}
