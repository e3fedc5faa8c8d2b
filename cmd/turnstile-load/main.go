// Command turnstile-load is turnstile's load generator: see bench/load and
// the README's Benchmarks section. It only ever targets loopback.
//
//	turnstile-load -servers turnstile,gorilla -scenario connect,reject,fanout -conns 10000
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/turnstile-push/turnstile/bench/load"
)

func main() {
	if load.IsWorker() {
		os.Exit(load.RunWorker(os.Stdin, os.Stdout))
	}
	cfg, err := load.ParseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "turnstile-load:", err)
		os.Exit(2)
	}
	if err := load.Run(cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "turnstile-load:", err)
		if errors.Is(err, load.ErrThresholds) {
			os.Exit(99) // as k6 does when a threshold is missed
		}
		os.Exit(1)
	}
}
