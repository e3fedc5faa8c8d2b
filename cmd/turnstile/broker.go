package main

import "github.com/turnstile-push/turnstile/engine/broker"

// newBroker makes the broker the engine publishes through: the embedded
// one, with the history limits of the flags.
func newBroker(cfg *config) (broker.Broker, error) {
	return broker.NewMemory(broker.MemoryConfig{
		HistorySize:     cfg.HistorySize,
		HistoryTTL:      cfg.HistoryTTL,
		HistoryMaxBytes: cfg.HistoryMaxBytes,
	})
}
