// Package cli holds what vtrace's two programs share on their command
// lines: the host's cobra tree (cmd/vtrace) and the small guest binary
// (cmd/vtrace-guest), which carries no cobra, go-libvirt or SSH code.
//
// One home for each fact: the size syntax of every size flag (size.go),
// the guest agent's flags, defaults and run (agent.go), the build report of
// `vtrace version` (version.go) and usage errors, exit code 2 (usage.go).
// The agent's flags are a table (Flag) that cmd/vtrace hands to pflag and
// the guest binary to Parse, which reads pflag's syntax, so the two accept
// the same command lines.
//
// The package imports the agent (package guest) but nothing of the host,
// and neither pflag nor cobra.
package cli
