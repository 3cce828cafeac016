package collect

import "context"

// RunStarted is Run calling started once the capture started: once the
// agent answered the start order, or at once without Config.Start.
func RunStarted(ctx context.Context, cfg Config, started func()) (Summary, error) {
	return run(ctx, cfg, started)
}
