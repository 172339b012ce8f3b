# fieldgate — build, test, demo. `make test` is the test command CI runs.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
PREFIX  ?= /usr/local

.PHONY: build demo test test-short test-gpio fuzz bench install clean

## build: the gateway binary, bin/fieldgate (static, stripped)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/fieldgate ./cmd/fieldgate

## demo: the gateway against a simulated Modbus device and an embedded broker
demo: build
	$(GO) run ./cmd/fieldgate-demo -gateway bin/fieldgate -c examples/demo.toml

## test: every unit and integration test, with the race detector
test:
	$(GO) test -race -count=1 -timeout 20m ./...

## test-short: the quick tests for the edit-compile loop: -short leaves out
## the soaks and the tests that wait out timeouts, and no race detector
test-short:
	$(GO) test -short -count=1 ./...

## test-gpio: the GPIO adapter against gpio-sim in a small kernel under qemu
test-gpio:
	bash test/gpiovm/run.sh

## fuzz: each fuzz target for a number of inputs (FUZZTIME=5000000x for longer).
## A count, not a duration: Go 1.26's duration budget can fail a target
## spuriously with "context deadline exceeded" (go.dev/issue/75804).
FUZZTIME ?= 50000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./config
	$(GO) test -run '^$$' -fuzz '^FuzzShape$$' -fuzztime $(FUZZTIME) ./config
	$(GO) test -run '^$$' -fuzz '^FuzzParseCommand$$' -fuzztime $(FUZZTIME) ./bridge
	$(GO) test -run '^$$' -fuzz '^FuzzLimitConn$$' -fuzztime $(FUZZTIME) ./bridge
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./buffer
	$(GO) test -run '^$$' -fuzz '^FuzzRTUReply$$' -fuzztime $(FUZZTIME) ./adapters/modbus
	$(GO) test -run '^$$' -fuzz '^FuzzTCPReply$$' -fuzztime $(FUZZTIME) ./adapters/modbus
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEncode$$' -fuzztime $(FUZZTIME) ./adapters/modbus
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./adapters/serial
	$(GO) test -run '^$$' -fuzz '^FuzzLineMatch$$' -fuzztime $(FUZZTIME) ./adapters/serial

## bench: every benchmark once, printing its figures
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

## install: the binary, an example config and the systemd unit (as root)
install: build
	install -D -m 0755 bin/fieldgate $(DESTDIR)$(PREFIX)/bin/fieldgate
	install -D -m 0644 systemd/fieldgate.service $(DESTDIR)/etc/systemd/system/fieldgate.service
	test -e $(DESTDIR)/etc/fieldgate/fieldgate.toml || \
		install -D -m 0640 examples/full.toml $(DESTDIR)/etc/fieldgate/fieldgate.toml

clean:
	rm -rf bin demo-data
