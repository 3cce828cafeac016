# vtrace build, test, install and benchmark entry points.
GO      ?= go
BINOUT  ?= bin
BIN     := $(BINOUT)/vtrace
GUESTBIN := $(BINOUT)/vtrace-guest
DOCSOUT ?= build/docs
export CGO_ENABLED := 0
# Stamp the VCS revision into the binaries (vtrace version) when git can
# read this checkout.
BUILDVCS := $(shell git rev-parse --git-dir >/dev/null 2>&1 && echo auto || echo false)
GOBUILD  = $(GO) build -trimpath -buildvcs=$(BUILDVCS) -ldflags "-s -w"

# Where make install puts things (DESTDIR is prepended to each).
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
MANDIR       ?= $(PREFIX)/share/man
BASHCOMPDIR  ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR   ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR  ?= $(PREFIX)/share/fish/vendor_completions.d
UNITDIR      ?= $(PREFIX)/lib/systemd/system
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
SYSCONFDIR   ?= /etc
# Which init script becomes $(SYSCONFDIR)/init.d/vtrace-agent: sysv or openrc.
INITSCRIPT   ?= sysv

.PHONY: all build docs install install-guest uninstall uninstall-guest test bench lint clean deps demo-deps demo fuzz FORCE

all: build

# The host binary (every command) and the guest binary (the agent alone).
build: $(BIN) $(GUESTBIN)

$(BIN): FORCE
	$(GOBUILD) -o $@ ./cmd/vtrace

$(GUESTBIN): FORCE
	$(GOBUILD) -o $@ ./cmd/vtrace-guest

# Man pages and bash, zsh and fish completions, from the cobra commands.
docs:
	rm -rf $(DOCSOUT)
	$(GO) run -buildvcs=$(BUILDVCS) -tags gendocs ./cmd/vtrace $(DOCSOUT)

install: build docs install-guest
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/vtrace
	install -m 644 $(DOCSOUT)/man1/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(DOCSOUT)/completions/vtrace.bash $(DESTDIR)$(BASHCOMPDIR)/vtrace
	install -m 644 $(DOCSOUT)/completions/_vtrace $(DESTDIR)$(ZSHCOMPDIR)/_vtrace
	install -m 644 $(DOCSOUT)/completions/vtrace.fish $(DESTDIR)$(FISHCOMPDIR)/vtrace.fish

# The guest side alone: the guest binary, the agent's systemd unit and udev
# rule, and its init script (dist/; docs/service.md).
install-guest: $(GUESTBIN)
	@case "$(INITSCRIPT)" in sysv) ;; openrc) ;; *) echo "INITSCRIPT=$(INITSCRIPT): want sysv or openrc" >&2; exit 2 ;; esac
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(UDEVRULESDIR) $(DESTDIR)$(SYSCONFDIR)/init.d
	install -m 755 $(GUESTBIN) $(DESTDIR)$(BINDIR)/vtrace-guest
	sed 's|@BINDIR@|$(BINDIR)|g' dist/vtrace-agent.service >$(DESTDIR)$(UNITDIR)/vtrace-agent.service
	chmod 644 $(DESTDIR)$(UNITDIR)/vtrace-agent.service
	install -m 644 dist/60-vtrace-agent.rules $(DESTDIR)$(UDEVRULESDIR)/60-vtrace-agent.rules
	sed 's|@BINDIR@|$(BINDIR)|g' dist/vtrace-agent.$(if $(filter openrc,$(INITSCRIPT)),openrc,sh) >$(DESTDIR)$(SYSCONFDIR)/init.d/vtrace-agent
	chmod 755 $(DESTDIR)$(SYSCONFDIR)/init.d/vtrace-agent

uninstall: uninstall-guest
	rm -f $(DESTDIR)$(BINDIR)/vtrace $(DESTDIR)$(MANDIR)/man1/vtrace.1 $(DESTDIR)$(MANDIR)/man1/vtrace-*.1 \
		$(DESTDIR)$(BASHCOMPDIR)/vtrace $(DESTDIR)$(ZSHCOMPDIR)/_vtrace $(DESTDIR)$(FISHCOMPDIR)/vtrace.fish

uninstall-guest:
	rm -f $(DESTDIR)$(BINDIR)/vtrace-guest $(DESTDIR)$(UNITDIR)/vtrace-agent.service \
		$(DESTDIR)$(UDEVRULESDIR)/60-vtrace-agent.rules $(DESTDIR)$(SYSCONFDIR)/init.d/vtrace-agent

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
	$(GO) vet -tags gendocs ./cmd/vtrace

clean:
	rm -rf bin out $(DOCSOUT)
