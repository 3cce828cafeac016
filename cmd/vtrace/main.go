// Command vtrace streams ftrace data out of a virtual machine to its host.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "vtrace: %v\n", err)
		stop()
		os.Exit(exitCode(err))
	}
}
