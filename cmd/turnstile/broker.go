package main

import "github.com/turnstile-push/turnstile/engine/broker"

// newBroker makes the broker the engine publishes through: Redis's with
// -redis, else the embedded one, with the history limits of the flags.
func (s *server) newBroker() (broker.Broker, error) {
	if s.redis != nil {
		return s.newRedisBroker()
	}
	cfg := s.cfg
	return broker.NewMemory(broker.MemoryConfig{
		HistorySize:     cfg.HistorySize,
		HistoryTTL:      cfg.HistoryTTL,
		HistoryMaxBytes: cfg.HistoryMaxBytes,
	})
}
