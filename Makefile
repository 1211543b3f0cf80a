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

.PHONY: all satellites test unit e2e fuzz bench plugin demo interactive_test clean

all: bin/dockerfuse

satellites: $(SATS)

$(SAT_DIR)/satellite-linux-%: $(GOSRC)
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -tags $(SAT_TAGS) -ldflags '$(LDFLAGS)' -o $@ ./cmd/satellite

bin/dockerfuse: $(SATS) $(GOSRC)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/dockerfuse

bin/dockerfuse-plugin: $(SATS) $(GOSRC)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/dockerfuse-plugin

# The managed volume plugin, built without any registry: the rootfs image is
# FROM scratch (see Dockerfile), its context staged here from this checkout
# and the host's fusermount3. `make plugin && docker plugin enable dockerfuse`.
PLUGIN_NAME  ?= dockerfuse
PLUGIN_STATE ?= /var/lib/docker-plugins/dockerfuse
PLUGIN_CTX   := build/plugin-context
FUSERMOUNT   ?= $(shell command -v fusermount3 || echo /usr/bin/fusermount3)

plugin: bin/dockerfuse-plugin Dockerfile config.json
	rm -rf $(PLUGIN_CTX) build/plugin
	mkdir -p $(PLUGIN_CTX)/fs/usr/bin $(PLUGIN_CTX)/fs/etc $(PLUGIN_CTX)/fs/tmp \
		$(PLUGIN_CTX)/fs/mnt/volumes $(PLUGIN_CTX)/fs/state $(PLUGIN_CTX)/fs/run/docker/plugins \
		$(PLUGIN_CTX)/fs/var/run build/plugin/rootfs
	chmod 1777 $(PLUGIN_CTX)/fs/tmp
	chmod 0700 $(PLUGIN_CTX)/fs/state
	cp bin/dockerfuse-plugin $(PLUGIN_CTX)/dockerfuse-plugin
	cp -L $(FUSERMOUNT) $(PLUGIN_CTX)/fs/usr/bin/fusermount3
	for lib in $$(ldd $(FUSERMOUNT) | awk '$$2 == "=>" && $$3 ~ /^\// { print $$3 } $$1 ~ /^\// { print $$1 }'); do \
		mkdir -p $(PLUGIN_CTX)/fs$$(dirname $$lib) && cp -L $$lib $(PLUGIN_CTX)/fs$$lib || exit 1; \
	done
	printf 'user_allow_other\n' > $(PLUGIN_CTX)/fs/etc/fuse.conf
	ln -s /proc/self/mounts $(PLUGIN_CTX)/fs/etc/mtab
	DOCKER_BUILDKIT=0 docker build -q -f Dockerfile -t dockerfuse-plugin-rootfs:build $(PLUGIN_CTX)
	id=$$(docker create dockerfuse-plugin-rootfs:build) && \
		{ docker export $$id | tar -x -C build/plugin/rootfs; rc=$$?; docker rm $$id >/dev/null; exit $$rc; }
	docker rmi dockerfuse-plugin-rootfs:build >/dev/null
	cp config.json build/plugin/config.json
	mkdir -p -m 0700 $(PLUGIN_STATE)
	if docker plugin inspect $(PLUGIN_NAME) >/dev/null 2>&1; then docker plugin rm -f $(PLUGIN_NAME); fi
	docker plugin create $(PLUGIN_NAME) build/plugin
	docker plugin set $(PLUGIN_NAME) state.source=$(PLUGIN_STATE)

clean:
	rm -rf bin build tmp $(SATS)

# Unit, FUSE and end-to-end tests; the e2e tests need root, an engine and
# arm64 emulation (.ci/run sets them up) and fail rather than skip under CI.
# Every test, then the core again with GOMAXPROCS=1 (some bugs show only
# there), then a short run of each fuzz target.
test: satellites
	$(GO) vet ./... && $(GO) test -race -timeout 40m ./... && GOMAXPROCS=1 $(GO) test -count=1 -timeout 20m ./rpc/... ./satellite/... ./fuse/...
	$(MAKE) fuzz FUZZTIME=10s

# Each fuzz target of the rpc decoders for FUZZTIME. A failing input is
# saved under rpc/testdata/fuzz, where plain go test replays it from then on.
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzServerDecode$$' -fuzztime $(FUZZTIME) ./rpc
	$(GO) test -run '^$$' -fuzz '^FuzzClientDecode$$' -fuzztime $(FUZZTIME) ./rpc

# The main job on a prepared machine (.ci/setup): the plugin installed and a
# volume of a distroless container in use by another container.
demo: plugin
	PLUGIN_NAME=$(PLUGIN_NAME) scripts/demo

# A distroless container mounted under ./tmp/web for a quick look; Ctrl-C
# unmounts and removes the container.
interactive_test: bin/dockerfuse
	scripts/demo-images
	docker rm -f dockerfuse-interactive >/dev/null 2>&1 || true
	docker run -d --network none --name dockerfuse-interactive dockerfuse-demo-web >/dev/null
	mkdir -p tmp/web
	@echo "mounting dockerfuse-interactive on ./tmp/web; look in another terminal, Ctrl-C to stop"
	bin/dockerfuse -id dockerfuse-interactive -mount $(CURDIR)/tmp/web; \
		status=$$?; docker rm -f dockerfuse-interactive >/dev/null; exit $$status

# The benchmark of issue #4 (internal/bench): one table of dockerfuse against
# docker exec, docker cp and the native path, medians of BENCH_RUNS runs.
# It needs root, /dev/fuse and the engine; BENCH_OUT also writes the table,
# BENCH_STREAMS mounts with -streams N instead of the default.
BENCH_RUNS ?= 5
bench: bin/dockerfuse
	DOCKERFUSE_BENCH=1 DOCKERFUSE_BENCH_RUNS=$(BENCH_RUNS) DOCKERFUSE_BENCH_OUT=$(BENCH_OUT) \
		DOCKERFUSE_BENCH_STREAMS=$(BENCH_STREAMS) \
		$(GO) test -count=1 -timeout 20m -run '^TestBench$$' -v ./internal/bench
