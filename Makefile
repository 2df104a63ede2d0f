# ferry: run `make help` for the targets. The default goal is build.

.DEFAULT_GOAL := build

GO      ?= go
BIN     := bin/ferry
# Override on the command line: make build VERSION=1.2.3
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo devel)
COMMIT  := $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Fuzz hook for `make test`: FUZZ_TARGETS lists PACKAGE:FuzzFunc pairs
# (e.g. ./bundle:FuzzReader), each fuzzed for FUZZTIME after the tests (a run
# count, not a duration: Go 1.26 can fail a timed run at its deadline).
FUZZ_TARGETS ?= ./bundle:FuzzReader ./bundle:FuzzSeekTable ./bundle:FuzzParseManifest ./bundle:FuzzVerifyIndex ./internal/cosign:FuzzVerify
FUZZTIME     ?= 20000x

.PHONY: help build test demo bench lint docs interop clean

help: ## Show this list of targets
	@echo "usage: make [target] (default: build)"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-6s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/ferry (static, -trimpath, version from git describe)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/ferry

# The race detector needs cgo and a C compiler. On a machine with Go alone (a
# fresh minimal image: CGO_ENABLED is then 0, or go env CC names no program)
# `make test` runs the tests without it, and says so.
RACE := $(shell cc="$$($(GO) env CC)"; set -- $$cc; \
	if [ "$$($(GO) env CGO_ENABLED)" = 1 ] && [ -n "$$1" ] && command -v "$$1" >/dev/null 2>&1; then echo -race; fi)

test: ## Run go vet, then every test (with the race detector when a C compiler is there)
	$(GO) vet ./...
	@if [ -z "$(RACE)" ]; then echo "make test: no C compiler for cgo (go env CC: '$$($(GO) env CC)', CGO_ENABLED=$$($(GO) env CGO_ENABLED)): running the tests without -race"; fi
	$(GO) test $(RACE) -count=1 -timeout 9m ./...
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "$(GO) test -run '^\$$' -fuzz '^$$fn\$$' -fuzztime $(FUZZTIME) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

demo: build ## Export, inspect and import sample images between two local registries
	$(GO) run ./internal/cmd/ferry-demo -ferry $(BIN)

# Side-by-side run options, e.g. make bench BENCH_FLAGS='-sets small -reps 1'
BENCH_FLAGS ?=

bench: build ## Go benchmarks, then ferry side by side with crane, regctl and skopeo (writes docs/performance.md)
	$(GO) test -run '^$$' -bench . -benchmem ./bundle/...
	$(GO) run ./internal/cmd/ferry-bench -ferry $(BIN) $(BENCH_FLAGS)

lint: ## Run go vet and fail on files gofmt would change
	$(GO) vet ./...
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi

docs: ## Regenerate docs/cli.md from the CLI definition (a test fails when it is stale)
	$(GO) run ./cmd/ferry __docs > docs/cli.md.tmp || { rm -f docs/cli.md.tmp; exit 1; }
	mv docs/cli.md.tmp docs/cli.md

# The stock tools some tests check ferry's output with, built once from the
# Go module proxy into .tools/ (several minutes for cosign on two cores).
# make test runs those tests only where the tools are on PATH.
COSIGN_VERSION ?= v2.6.5
REGCTL_VERSION ?= v0.11.7

interop: ## Build cosign and regctl into .tools/, then run the tests that check ferry's output with them
	@test -x .tools/cosign || GOBIN=$(CURDIR)/.tools $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)
	@test -x .tools/regctl || GOBIN=$(CURDIR)/.tools $(GO) install github.com/regclient/regclient/cmd/regctl@$(REGCTL_VERSION)
	PATH="$(CURDIR)/.tools:$$PATH" $(GO) test -count=1 -v -run 'Interop|LiveCosign|ReferrersDockerRegistry' ./bundle ./cmd/ferry

clean: ## Remove build output (bin/, dist/, coverage.out; not the .bench/ cache)
	rm -rf bin/ dist/ coverage.out
