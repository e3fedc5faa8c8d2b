package main

import (
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
)

// cpuProfileEnv names a file for a CPU profile of a chosen window, for
// benchmarks (bench/README.md): the first SIGUSR1 starts the profile, the
// second (or the end of the process) stops it and writes the file. It is
// an environment variable only, not a flag: it is a measuring hook, not
// configuration. Unset, SIGUSR1 keeps its default meaning.
const cpuProfileEnv = "TURNSTILE_CPUPROFILE"

// cpuProfiler is the SIGUSR1-toggled profile; its methods are safe for
// concurrent use.
type cpuProfiler struct {
	path    string
	log     *slog.Logger
	signals chan os.Signal
	mu      sync.Mutex
	f       *os.File
	done    bool // the one profile is written: later signals are ignored
}

// startCPUProfiler arms the profiler when getenv(cpuProfileEnv) is set; the
// returned stop writes a running profile out. It never fails the start:
// a profile that cannot be written is logged.
func startCPUProfiler(getenv func(string) string, log *slog.Logger) (stop func()) {
	path := getenv(cpuProfileEnv)
	if path == "" {
		return func() {}
	}
	p := &cpuProfiler{path: path, log: log, signals: make(chan os.Signal, 2)}
	signal.Notify(p.signals, syscall.SIGUSR1)
	go func() {
		for range p.signals {
			p.toggle()
		}
	}()
	log.Info("CPU profile armed: SIGUSR1 starts it, a second SIGUSR1 writes it", "path", path)
	return func() {
		signal.Stop(p.signals)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.finish()
	}
}

func (p *cpuProfiler) toggle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f != nil {
		p.finish()
		return
	}
	if p.done {
		return
	}
	f, err := os.Create(p.path)
	if err != nil {
		p.log.Warn("CPU profile not started", "err", err)
		p.done = true
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		p.log.Warn("CPU profile not started", "err", err)
		_ = f.Close()
		p.done = true
		return
	}
	p.f = f
}

// finish stops a running profile; p.mu is held.
func (p *cpuProfiler) finish() {
	if p.f == nil {
		return
	}
	pprof.StopCPUProfile()
	if err := p.f.Close(); err != nil {
		p.log.Warn("CPU profile not written", "err", err)
	} else {
		p.log.Info("CPU profile written", "path", p.path)
	}
	p.f, p.done = nil, true
}
