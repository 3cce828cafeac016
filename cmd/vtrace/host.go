package main

import "github.com/spf13/cobra"

// newHostCmds lists the host subcommands; each lives in its own file.
func newHostCmds() []*cobra.Command {
	return []*cobra.Command{
		newHostSetupCmd(),
		newHostTeardownCmd(),
		newHostQemuArgsCmd(),
		newHostStartCmd(),
		newHostStopCmd(),
		newHostCollectCmd(),
		newHostStatusCmd(),
		newHostConvertCmd(),
		newHostStatsCmd(),
	}
}
