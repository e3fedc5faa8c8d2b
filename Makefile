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

# What CI runs.
test: vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

vet:
	$(GO) vet $(PKGS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin
