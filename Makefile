# dockerfuse build. `make` builds bin/dockerfuse with both satellites inside;
# `make test` runs every test (unit, FUSE, and end to end against the engine).

GO        ?= go
GOFLAGS   ?=
PKG       := github.com/dockerfuse/dockerfuse
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X $(PKG)/internal/version.Version=$(VERSION)
# The satellite is copied into every target: keep it small and static.
SAT_TAGS  := codec.notfastpath
SAT_DIR   := satellite/embedded
SATS      := $(SAT_DIR)/satellite-linux-amd64 $(SAT_DIR)/satellite-linux-arm64
GOSRC     := $(shell find . -name '*.go' -not -path './tmp/*' -not -path './build/*') go.mod go.sum

.PHONY: all satellites test unit e2e fuzz bench plugin interactive_test clean

all: bin/dockerfuse

satellites: $(SATS)

$(SAT_DIR)/satellite-linux-%: $(GOSRC)
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -tags $(SAT_TAGS) -ldflags '$(LDFLAGS)' -o $@ ./cmd/satellite

bin/dockerfuse: $(SATS) $(GOSRC)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/dockerfuse

clean:
	rm -rf bin build tmp $(SATS)
