# turnstile — see README.md.
GO      ?= go
PKGS    ?= ./...
BENCH   ?= .
COUNT   ?= 6
FUZZTIME ?= 20s

.PHONY: all build run run-cluster test vet lint bench fuzz load curve clean

all: build

# -buildvcs=auto stamps the git commit into the binary (turnstile -version),
# whatever GOFLAGS says.
build:
	$(GO) build -buildvcs=auto -o bin/turnstile ./cmd/turnstile
	$(GO) build -buildvcs=auto -o bin/turnstile-load ./cmd/turnstile-load

# Starts the server on embedded defaults: demo user, random keys, any Origin.
# More flags: make run ARGS='-http :9090 -ws :9091'. On a terminal the server
# runs as its own foreground job (set -m), so Ctrl-C reaches it alone: it
# drains, exits 0, and so does make.
ARGS ?=
run: SHELL := /bin/bash
run:
	@$(GO) build -buildvcs=auto -o bin/turnstile ./cmd/turnstile
	@if [ -t 0 ]; then set -m; fi; bin/turnstile -dev $(ARGS); status=$$?; exit $$status

# Many nodes on loopback: redis-server on 127.0.0.1:6390 (nothing saved) and
# three -dev nodes sharing it, HTTP :8080 :8082 :8084, WebSocket :8081
# :8083 :8085, one JWT key, ticket key and publish key (printed). A ticket
# from one node admits at any node; a publish at one reaches all. Ctrl-C
# stops everything.
CLUSTER_KEY ?= $(shell head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
run-cluster:
	@command -v redis-server >/dev/null || { echo "run-cluster needs redis-server: apt-get install redis-server"; exit 1; }
	$(GO) build -o bin/turnstile ./cmd/turnstile
	@dir=$$(mktemp -d); key=$(CLUSTER_KEY); pids=""; \
	trap 'kill $$pids 2>/dev/null; wait; rm -rf $$dir' EXIT INT TERM; \
	redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --dir $$dir --logfile $$dir/redis.log & pids="$$pids $$!"; \
	sleep 0.5; \
	for i in 0 1 2; do \
	  TURNSTILE_JWT_SECRET=jwt-$$key TURNSTILE_TICKET_KEY=ticket-$$key TURNSTILE_PUBLISH_KEY=pub-$$key \
	  bin/turnstile -dev -redis redis://127.0.0.1:6390 -http 127.0.0.1:$$((8080+2*i)) -ws 127.0.0.1:$$((8081+2*i)) & pids="$$pids $$!"; \
	done; \
	echo "publish key: pub-$$key"; wait

# What CI runs: the product module, then the peer baselines (their own
# module under bench/peers, so that they keep building beside the product).
test: vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	cd bench/peers && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...

vet:
	$(GO) vet $(PKGS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Micro-benchmarks of the main module, output ready for benchstat. Each run
# is kept as bench/results/bench-<UTC time>.txt; bench.txt is the latest:
#   make bench; …change…; make bench; benchstat bench/results/bench-<first>.txt bench/results/bench.txt
# Narrow with BENCH=Redeem PKGS=./auth/... COUNT=3. It says beforehand about
# how long it will take (benchmarks × COUNT × ~1.5 s) and afterwards how long it took.
STAMP := $(shell date -u +%Y%m%dT%H%M%SZ)
bench:
	@mkdir -p bench/results
	@n=$$($(GO) test -list '$(BENCH)' $(PKGS) 2>/dev/null | grep -c '^Benchmark'); \
		echo "make bench: $$n benchmarks × COUNT=$(COUNT): about $$(( (n * $(COUNT) * 3 + 119) / 120 )) min; results in bench/results/bench-$(STAMP).txt"
	@start=$$(date +%s); \
		$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) -timeout 60m $(PKGS) | tee bench/results/bench-$(STAMP).txt; \
		status=$${PIPESTATUS[0]}; cp bench/results/bench-$(STAMP).txt bench/results/bench.txt; \
		echo "make bench: took $$(( $$(date +%s) - start )) s; bench/results/bench-$(STAMP).txt (also bench.txt)"; exit $$status
bench: SHELL := /bin/bash

# About 60 s side by side on loopback, turnstile against the gorilla peer:
# a reject storm, 10k idle connections, fan-out to 10k. One table, ratios
# turnstile/gorilla; JSON in bench/results/load.json. See bench/README.md.
LOAD_SERVERS ?= turnstile,gorilla
# The servers get CPU 0 alone and the load workers the rest (if there is a rest).
LOAD_PIN ?= $(shell [ "$$(nproc)" -gt 1 ] && echo 0)
# More turnstile-load flags, e.g. LOAD_FLAGS='-server-procs 2 -repeat 3'.
LOAD_FLAGS ?=
load:
	$(GO) build -buildvcs=auto -o bin/turnstile ./cmd/turnstile
	$(GO) build -buildvcs=auto -o bin/turnstile-load ./cmd/turnstile-load
	cd bench/peers && for p in gorilla gobwas nbio centrifuge; do $(GO) build -o ../../bin/peer-$$p ./$$p || exit 1; done
	@mkdir -p bench/results
	@echo "make load: about 30 s per server (LOAD_SERVERS=$(LOAD_SERVERS)); results in bench/results/load-$(STAMP).{txt,json,html} (latest: load.*)"
	bin/turnstile-load -servers $(LOAD_SERVERS) -pin "$(LOAD_PIN)" -scenario reject,connect,fanout \
		-conns 10000 -in-flight 1024 -duration 8s -hold 3s -messages 20 -interval 500ms \
		$(LOAD_FLAGS) -json bench/results/load-$(STAMP).json -html bench/results/load-$(STAMP).html > bench/results/load-$(STAMP).txt; \
		status=$$?; cat bench/results/load-$(STAMP).txt; \
		for f in txt json html; do [ ! -f bench/results/load-$(STAMP).$$f ] || cp bench/results/load-$(STAMP).$$f bench/results/load.$$f; done; exit $$status

# Scaling curves (bench/README.md): server CPU per operation and memory per
# connection at each count; the last row of each block must stay near 1.00x.
CURVE ?= 1000,5000,10000,19000
curve:
	$(GO) build -o bin/turnstile ./cmd/turnstile
	$(GO) build -o bin/turnstile-load ./cmd/turnstile-load
	@mkdir -p bench/results
	bin/turnstile-load -servers turnstile -pin "$(LOAD_PIN)" -curve $(CURVE) -scenario connect,fanout \
		-hold 2s -messages 10 -interval 200ms -repeat 3 $(LOAD_FLAGS) -json bench/results/curve.json -html bench/results/curve.html > bench/results/curve.txt; \
		status=$$?; cat bench/results/curve.txt; exit $$status

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
