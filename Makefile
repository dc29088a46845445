# incarnate: throwaway environments that stay until you throw them away.

GO      ?= go
BIN     ?= incarnate
PREFIX  ?= /usr/local
SESSION ?= scratch

.PHONY: all build stage man run shell test test-short bench lint fmt install uninstall clean

all: build

# The release build enters through the pre-runtime stage of `run`
# (internal/prestage); a plain `go build` works too, without it.
# The version is git's description of the checkout, and the build is
# stamped with its revision (-buildvcs=auto: none outside a git tree).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
# The keeper is built on its own first, as $(BIN)-keeper (internal/keeper:
# a cold start then skips the init of everything else), and incarnate is
# stamped with its Go build ID, so that it starts keepers from that
# binary and no other.
ENTRY   := -E=github.com/incarnate-dev/incarnate/internal/prestage.entry -X github.com/incarnate-dev/incarnate/sandbox.stagedBuild=yes
LDFLAGS := $(ENTRY) -X github.com/incarnate-dev/incarnate/cli.Version=$(VERSION)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags='$(ENTRY)' -o $(BIN)-keeper ./internal/keeper
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags="$(LDFLAGS) -X github.com/incarnate-dev/incarnate/sandbox.keeperBuildID=$$($(GO) tool buildid $(BIN)-keeper)" -o $(BIN) .

# Rebuild the stage's blob from its C (needs gcc and binutils).
# STAGE_OUT: where the generated assembly goes (a test compares a fresh
# one with the one checked in).
STAGE     := internal/prestage
STAGE_TMP := $(shell mktemp -d -u /tmp/incarnate-stage.XXXXXX)
STAGE_OUT ?= $(CURDIR)/$(STAGE)/blob_amd64.s
stage:
	mkdir -p $(STAGE_TMP)
	gcc $$(cat $(STAGE)/c/cflags) -c $(STAGE)/c/stage.c -o $(STAGE_TMP)/stage.o
	ld -pie --no-dynamic-linker -z norelro -z noexecstack --no-warn-rwx-segments -T $(STAGE)/c/stage.ld -e stage_main $(STAGE_TMP)/stage.o -o $(STAGE_TMP)/stage.elf
	cd $(STAGE) && $(GO) run gen.go $(STAGE_TMP)/stage.elf $(STAGE_OUT)
	rm -rf $(STAGE_TMP)

# Build, then open the interface on the store (sessions on the built-in
# host base need no download).
run: build
	./$(BIN)

# Build, then a shell in session $(SESSION) on the host base, no interface.
shell: build
	@./$(BIN) ls 2>/dev/null | grep -q '^$(SESSION) ' || ./$(BIN) new $(SESSION)
	./$(BIN) enter $(SESSION)

# The whole suite. Sandbox tests create real namespaces and mounts, and
# run both as root and as an unprivileged uid when started as root. The
# Debian workload test needs the Debian mirror; `make test-short` skips it.
test: lint
	$(GO) test -count=1 -timeout 15m ./...

test-short: lint
	$(GO) test -count=1 -short ./...

# Ratios against baselines measured in the same run (see cli/bench_linux_test.go).
# BEFORE=FILE times another build of incarnate beside this one (run figures).
bench: build
	INCARNATE_BIN=$(CURDIR)/$(BIN) INCARNATE_BEFORE_BIN=$(BEFORE) $(GO) test -count=1 -run '^$$' -bench . -benchtime 200x ./...

lint:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w .

# The man page and the completion scripts come from the binary's own
# command table, so they cannot drift from it.
man: build
	./$(BIN) __man > incarnate.1

# Where each shell looks for completions, under PREFIX.
BASHCOMP := $(PREFIX)/share/bash-completion/completions/incarnate
ZSHCOMP  := $(PREFIX)/share/zsh/site-functions/_incarnate
FISHCOMP := $(PREFIX)/share/fish/vendor_completions.d/incarnate.fish
MANPAGE  := $(PREFIX)/share/man/man1/incarnate.1

install: build man
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/$(BIN)
	install -D -m 0755 $(BIN)-keeper $(DESTDIR)$(PREFIX)/bin/$(BIN)-keeper
	install -D -m 0644 incarnate.1 $(DESTDIR)$(MANPAGE)
	./$(BIN) completion bash | install -D -m 0644 /dev/stdin $(DESTDIR)$(BASHCOMP)
	./$(BIN) completion zsh | install -D -m 0644 /dev/stdin $(DESTDIR)$(ZSHCOMP)
	./$(BIN) completion fish | install -D -m 0644 /dev/stdin $(DESTDIR)$(FISHCOMP)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/$(BIN) $(DESTDIR)$(PREFIX)/bin/$(BIN)-keeper $(DESTDIR)$(MANPAGE) $(DESTDIR)$(BASHCOMP) $(DESTDIR)$(ZSHCOMP) $(DESTDIR)$(FISHCOMP)

clean:
	rm -f $(BIN) $(BIN)-keeper incarnate.1
