# incarnate: throwaway environments that stay until you throw them away.

GO      ?= go
BIN     ?= incarnate
PREFIX  ?= /usr/local
SESSION ?= scratch

.PHONY: all build stage run shell test test-short bench lint fmt install clean

all: build

# The release build enters through the pre-runtime stage of `run`
# (internal/prestage); a plain `go build` works too, without it.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-E=app/incarnate/internal/prestage.entry -o $(BIN) .

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

install: build
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/$(BIN)

clean:
	rm -f $(BIN)
