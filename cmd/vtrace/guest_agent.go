package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newGuestAgentCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "agent",
		Short: "Stream each CPU's ring-buffer pages to the host",
		RunE:  func(*cobra.Command, []string) error { return errors.New("not yet built") },
	}
}
