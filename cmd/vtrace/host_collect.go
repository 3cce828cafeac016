package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newHostStartCmd() *cobra.Command {
	return &cobra.Command{Use: "start [<domain>]", Short: "Tell the guest agent to start recording",
		RunE: func(*cobra.Command, []string) error { return errors.New("not yet built") }}
}

func newHostStopCmd() *cobra.Command {
	return &cobra.Command{Use: "stop [<domain>]", Short: "Tell the guest agent to stop recording",
		RunE: func(*cobra.Command, []string) error { return errors.New("not yet built") }}
}

func newHostCollectCmd() *cobra.Command {
	return &cobra.Command{Use: "collect [<domain>]", Short: "Collect the per-CPU streams into a capture directory",
		RunE: func(*cobra.Command, []string) error { return errors.New("not yet built") }}
}
