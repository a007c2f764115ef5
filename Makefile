# fluxd and fluxctl.
#
#   make deps    install what a fresh Debian machine lacks (idempotent, ~1 s when nothing is missing)
#   make build   build bin/fluxd and bin/fluxctl
#   make test    go vet, unit tests and the e2e suite under -race, against real parts
#   make demo    run the local environment with fluxd, until Ctrl-C
#   make bench   the sync benchmark beside kubectl, then the image scanner's; see BENCHMARKS.md
#                (BENCH_FLAGS='-only images' runs the image scanner's alone)

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
export CGO_ENABLED := 1

# zsh and fish check fluxctl's completion scripts in the unit tests.
APT_PACKAGES := libgit2-dev pkg-config memcached docker-registry openssh-server openssh-client git ca-certificates zsh fish
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN := bin
GO_TEST_FLAGS ?=
# Flags of e2e/bench, e.g. '-only images -images-rps 200'.
BENCH_FLAGS ?=
# The control-plane binaries live outside the repo, keyed by their pinned versions.
KUBEBIN = $$(e2e/kubebin/build.sh)

.PHONY: all deps build kubebin vet unit e2e test demo bench clean

all: build

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v go >/dev/null || { echo "Go 1.26 is required on PATH (or in /usr/local/go/bin)"; exit 1; }

build: deps
	go build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

kubebin: deps
	@e2e/kubebin/build.sh >/dev/null

vet: deps
	go vet ./...

unit: deps kubebin
	FLUXD_KUBEBIN=$(KUBEBIN) go test -race -count=1 -timeout 20m $(GO_TEST_FLAGS) $$(go list ./... | grep -v '/e2e')

e2e: deps kubebin
	FLUXD_KUBEBIN=$(KUBEBIN) go test -race -count=1 -timeout 40m $(GO_TEST_FLAGS) ./e2e/...

test: vet unit e2e

demo: build kubebin
	go build -o $(BIN)/fluxd-demo ./e2e/demo
	FLUXD_KUBEBIN=$(KUBEBIN) $(BIN)/fluxd-demo --fluxd $(BIN)/fluxd

bench: build kubebin
	go build -o $(BIN)/fluxd-bench ./e2e/bench
	FLUXD_KUBEBIN=$(KUBEBIN) $(BIN)/fluxd-bench --fluxd $(BIN)/fluxd -o $(BIN)/bench.md $(BENCH_FLAGS)
	@echo "(the table is in $(BIN)/bench.md; copy it into BENCHMARKS.md with the machine it came from)"

clean:
	rm -rf $(BIN)
