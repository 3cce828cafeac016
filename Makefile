# vtrace build, test and benchmark entry points.
GO      ?= go
BIN     := bin/vtrace
export CGO_ENABLED := 0

.PHONY: all build test bench lint clean deps demo-deps demo fuzz

all: build

build:
	$(GO) build -trimpath -ldflags "-s -w" -o $(BIN) ./cmd/vtrace

# Everything the tests need (apt packages, Go modules), then every test,
# integration tests against the real tracefs, libvirtd and qemu included.
test: deps
	$(GO) test -count=1 -p 1 -timeout 80m ./...

deps:
	bash scripts/deps.sh test

# Only what the demo needs (no libvirt, ssh server, kernel source or compiler).
demo-deps:
	bash scripts/deps.sh demo

bench: deps build
	bash scripts/bench.sh

# The README's first command: a real guest traced end to end (docs/demo.md).
# KERNEL=6.12 boots Debian's bookworm-backports kernel instead of 6.1.
demo: demo-deps build
	bash scripts/demo.sh $(if $(KERNEL),-k $(KERNEL))

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin out
