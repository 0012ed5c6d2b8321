# meshnode: `make` builds the signed feeds under out/, `make test` runs every test.
# See README.md.

GO       ?= go
OUT      ?= out
ARCH     ?= all
MESHKIT  := $(OUT)/host/meshkit
# Packages whose tests also run as big-endian MIPS binaries under qemu.
CROSS_PKGS := ./internal/uci ./feeds/ipk ./feeds/index ./feeds/usign ./feeds/pgp ./feeds/verify ./internal/manifest \
	./agent/config ./agent/status ./agent/overlay ./agent/shape ./agent/wan ./internal/rtnl \
	./lora-bridge/frame ./lora-bridge/meshpb ./lora-bridge/journal ./lora-bridge/message ./lora-bridge/airtime ./lora-bridge/alert
FUZZTIME ?= 30s

.PHONY: all feed feed-23.05 meshkit test test-unit test-cross lint deps bench fuzz demo image profiles clean distclean

all: feed

meshkit:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(MESHKIT) ./cmd/meshkit

feed: meshkit
	$(MESHKIT) build --out $(OUT) --arch $(ARCH)

# Packages for OpenWrt 23.05 (older version and Installed-Size forms).
feed-23.05: meshkit
	$(MESHKIT) build --out $(OUT)/23.05 --dev-keys $(OUT)/keys --arch $(ARCH) --openwrt 23.05

deps:
	@scripts/deps.sh

test: deps lint test-unit test-cross
	@echo "make test: all passed"

lint:
	@fmt_out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './out/*')); \
	if [ -n "$$fmt_out" ]; then echo "gofmt needed:"; echo "$$fmt_out"; exit 1; fi
	$(GO) vet ./...
	shellcheck .ci/run scripts/*.sh tests/overlay/demo/demo.sh sdk-docker/entrypoint.sh
	shellcheck -s sh profiles/files/etc/uci-defaults/*
	shellcheck -s sh $$(scripts/shell-files.sh)

# Unit tests in parallel; the end-to-end tests (network namespaces,
# throughput and timing measurements) one package at a time, so they do
# not skew each other's figures on a 2-core machine.
test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /tests)
	$(GO) test -count=1 -p 1 ./tests/...

test-cross:
	@scripts/test-cross.sh $(CROSS_PKGS)

bench: meshkit
	$(GO) run ./tests/bench/build
	$(GO) run ./tests/bench/lora
	$(GO) run ./tests/bench/shape
	$(GO) run ./tests/bench/overlay
	$(GO) run ./tests/bench/wan

fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

# Flash budget of every device and role.
profiles: meshkit
	$(MESHKIT) profiles

# A sysupgrade image with the OpenWrt ImageBuilder in Docker:
#   make image DEVICE=gl-ar300m-nor ROLE=uplink [NODE=name]
image: meshkit
	$(MESHKIT) image --device $(DEVICE) --role $(ROLE) $(if $(NODE),--node $(NODE))

# The test mesh (hub, relay, two NATed uplinks, clients) in network
# namespaces, with the real agent; Ctrl-C removes it all. Needs root.
demo:
	tests/overlay/demo/demo.sh

clean:
	rm -rf $(OUT)/feed $(OUT)/bin $(OUT)/host $(OUT)/23.05 $(OUT)/cross $(OUT)/cache

# Also removes the development signing keys: routers that trusted them
# will refuse the next build's feed.
distclean:
	rm -rf $(OUT)
