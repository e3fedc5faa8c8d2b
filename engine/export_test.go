package engine

import "context"

// PublishCount is PublishUser without an idempotency key for tests: the
// local recipients, or -1 if the broker failed (so an assertion on the
// count also catches the failure).
func (s *Server) PublishCount(user string, data []byte) int {
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	r, err := s.PublishUser(ctx, user, data, "")
	if err != nil {
		return -1
	}
	return r.Recipients
}

// BroadcastCount is BroadcastAll for tests: the local connections open, or
// -1 if the broker failed.
func (s *Server) BroadcastCount(data []byte) int {
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	n, err := s.BroadcastAll(ctx, data)
	if err != nil {
		return -1
	}
	return n
}
