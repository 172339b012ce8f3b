# fieldgate — build, test, demo. `make test` is the test command CI runs.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Static, stripped, no local paths: what build and release both compile with.
GOBUILD  = CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
PREFIX  ?= /usr/local
MAINTAINER ?= fieldgate maintainers <maintainers@fieldgate.invalid>
# Release architectures: armv6 (Pi Zero/1), armv7, arm64 and amd64.
RELEASE_ARCHES ?= armv6 armv7 arm64 amd64
DIST    ?= dist
# Packages carry the commit's time, so one commit builds the same .debs.
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

.PHONY: build release demo test test-short test-gpio soak fuzz bench generate-check install clean

## build: the gateway binary, bin/fieldgate (static, stripped)
build:
	$(GOBUILD) -o bin/fieldgate ./cmd/fieldgate

## release: dist/ with a binary and a .deb per architecture, and SHA256SUMS
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	set -e; for a in $(RELEASE_ARCHES); do \
		case $$a in armv*) goarch=arm goarm=$${a#armv} ;; *) goarch=$$a goarm= ;; esac; \
		GOOS=linux GOARCH=$$goarch GOARM=$$goarm $(GOBUILD) -o $(DIST)/fieldgate_$(VERSION)_linux_$$a ./cmd/fieldgate; \
	done
	$(GO) -C packaging run . -version '$(VERSION)' -commit '$(COMMIT)' -maintainer '$(MAINTAINER)' \
		-dist $(abspath $(DIST)) $(foreach a,$(RELEASE_ARCHES),$(abspath $(DIST))/fieldgate_$(VERSION)_linux_$(a))

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

## soak: the gateway for SOAK (10m) against a broker and a device that go
## down every 20 s; prints memory, goroutines and open files as it goes
SOAK ?= 10m
soak:
	FIELDGATE_SOAK=$(SOAK) $(GO) test -count=1 -run '^TestSoak$$' -v -timeout 60m ./test

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
	$(GO) test -run '^$$' -fuzz '^FuzzRecoverForgery$$' -fuzztime $(FUZZTIME) ./buffer
	$(GO) test -run '^$$' -fuzz '^FuzzRTUReply$$' -fuzztime $(FUZZTIME) ./adapters/modbus
	$(GO) test -run '^$$' -fuzz '^FuzzDeviceIDReply$$' -fuzztime $(FUZZTIME) ./adapters/modbus
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEncode$$' -fuzztime $(FUZZTIME) ./adapters/modbus
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./adapters/serial
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME) ./bridge/sparkplug
	$(GO) test -run '^$$' -fuzz '^FuzzTCPReply$$' -fuzztime $(FUZZTIME) ./adapters/modbus
	$(GO) test -run '^$$' -fuzz '^FuzzLineMatch$$' -fuzztime $(FUZZTIME) ./adapters/serial

## bench: the performance instrument (docs/PERFORMANCE.md): the hot paths'
## benchmarks, then the gateway against Mosquitto and a Modbus server beside
## the ceiling of broker and client library; a table, and bin/bench.json.
## BENCH_ARGS adds options: -rounds N, -only PHASES, -formats F, -profile DIR
BENCH_ARGS ?=
bench:
	$(GO) test -v -count=1 -timeout 10m -run '^TestBench$$' ./test/bench -args -mode full -out $(abspath bin/bench.json) $(BENCH_ARGS)

## bench-smoke: the instrument at a small size, every benchmark once: checks
## that every phase produces its figures, numbers all, asserting none of
## their values (CI runs it; under a minute here, bounded at two)
.PHONY: bench-smoke
bench-smoke:
	$(GO) test -v -count=1 -timeout 2m -run '^TestBench$$' ./test/bench -args -mode smoke -out $(abspath bin/bench-smoke.json) $(BENCH_ARGS)

## generate-check: regenerate the generated code (protoc from Debian's
## protobuf-compiler) and fail if it differs from what is committed
generate-check:
	$(GO) generate ./bridge/sparkplug/sparkplugpb
	git diff --exit-code -- bridge/sparkplug/sparkplugpb

## install: the binary, the starter config and the systemd unit (as root),
## without the package; the README's manual route creates the user first
install: build
	install -D -m 0755 bin/fieldgate $(DESTDIR)$(PREFIX)/bin/fieldgate
	sed 's|/usr/bin/fieldgate|$(PREFIX)/bin/fieldgate|' systemd/fieldgate.service | \
		install -D -m 0644 /dev/stdin $(DESTDIR)/etc/systemd/system/fieldgate.service
	test -e $(DESTDIR)/etc/fieldgate/fieldgate.toml || \
		install -D -m 0640 examples/starter.toml $(DESTDIR)/etc/fieldgate/fieldgate.toml

clean:
	rm -rf bin dist demo-data
