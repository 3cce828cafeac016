// Package e2e holds vtrace's end-to-end tests: a real guest under qemu TCG
// (internal/vmtest) runs `vtrace guest agent`, the host runs the built
// `vtrace host ...` commands, and the tests compare what reached the host
// with the per-CPU statistics the guest kernel kept.
//
// Every test boots one guest and bounds its own time; qemu is killed at
// cleanup. The package has only tests: `go test ./internal/e2e -run
// TestIntegration -v`. The VM benchmark is built only with the tag vmbench
// (scripts/bench-vm.sh).
package e2e
