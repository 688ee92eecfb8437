# keymint: `make run` starts it on the embedded store; `make test` is the whole
# suite and installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
GO ?= go
BIN := bin/keymint

.PHONY: all build run test test-go lint gen gen-check fuzz deps clean bench mutate

all: build

# keymint version prints these (services/keymint/version.go).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./services/keymint

# run serves on the embedded store in ./data; --banner prints the quick
# start with the addresses serve actually bound.
run: build
	$(BIN) serve --log-format=text --banner

# deps installs the Debian packages the tests need (PostgreSQL, Redis, nginx,
# Caddy, chromium) when missing; Go tools come pinned from go.mod's tool block.
deps:
	@bash scripts/install-deps.sh

test: deps lint
	@bash scripts/test.sh

lint: gen-check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@# go.mod and go.sum must be what `go mod tidy` makes of them.
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }

gen:
	bash scripts/gen.sh

# gen-check fails when committed generated code differs from a fresh generation.
gen-check:
	@bash scripts/gen-check.sh

fuzz:
	FUZZTIME=60s bash scripts/fuzz.sh

# bench measures the validation hot path against bare gRPC and net/http
# servers in the same run (a few minutes; not part of make test).
bench:
	bash scripts/bench/run.sh

# mutate runs mutation testing (gremlins, pinned in go.mod's tool block) and
# prints the share of mutants killed per package; slow, not part of make test.
mutate:
	bash scripts/mutate.sh

clean:
	rm -rf bin .gen
