# turnstile — see README.md.
GO      ?= go
PKGS    ?= ./...
BENCH   ?= .
COUNT   ?= 6
FUZZTIME ?= 20s

.PHONY: all build run test vet lint bench fuzz load clean

all: build

build:
	$(GO) build -o bin/turnstile ./cmd/turnstile
	$(GO) build -o bin/turnstile-load ./cmd/turnstile-load

# Starts the server on embedded defaults: demo user, random keys, any Origin.
run:
	$(GO) run ./cmd/turnstile -dev

# What CI runs: the product module, then the peer baselines (their own
# module under bench/peers, so that they keep building beside the product).
test: vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	cd bench/peers && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...

vet:
	$(GO) vet $(PKGS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Micro-benchmarks of the main module, output ready for benchstat:
#   make bench && cp bench/results/bench.txt old.txt; …; benchstat old.txt bench/results/bench.txt
# Narrow with BENCH=Redeem PKGS=./auth/... COUNT=3.
bench:
	@mkdir -p bench/results
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) -timeout 60m $(PKGS) | tee bench/results/bench.txt

# About 60 s side by side on loopback, turnstile against the gorilla peer:
# a reject storm, 10k idle connections, fan-out to 10k. One table, ratios
# turnstile/gorilla; JSON in bench/results/load.json. See bench/README.md.
LOAD_SERVERS ?= turnstile,gorilla
# The servers get CPU 0 alone and the load workers the rest (if there is a rest).
LOAD_PIN ?= $(shell [ "$$(nproc)" -gt 1 ] && echo 0)
# More turnstile-load flags, e.g. LOAD_FLAGS='-server-procs 2 -repeat 3'.
LOAD_FLAGS ?=
load:
	$(GO) build -o bin/turnstile ./cmd/turnstile
	$(GO) build -o bin/turnstile-load ./cmd/turnstile-load
	cd bench/peers && for p in gorilla gobwas nbio; do $(GO) build -o ../../bin/peer-$$p ./$$p || exit 1; done
	@mkdir -p bench/results
	bin/turnstile-load -servers $(LOAD_SERVERS) -pin "$(LOAD_PIN)" -scenario reject,connect,fanout \
		-conns 10000 -in-flight 1024 -duration 8s -hold 3s -messages 20 -interval 500ms \
		$(LOAD_FLAGS) -json bench/results/load.json > bench/results/load.txt; \
		status=$$?; cat bench/results/load.txt; exit $$status

# Each fuzz target for FUZZTIME (default 20s); FUZZTIME=10m make fuzz for a real run.
# The seed corpora (testdata/fuzz) also run as plain tests in make test.
FUZZ_TARGETS = ./engine:FuzzHandshake ./engine:FuzzFrames ./engine:FuzzCommand ./auth/ticket:FuzzParse ./auth/ticket:FuzzRedeem
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

clean:
	rm -rf bin
