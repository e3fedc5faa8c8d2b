package main

import (
	"net/http"

	"github.com/turnstile-push/turnstile/auth"
)

// refuseWhileDraining answers 503 on the endpoints that start new work on
// this node (/ws_ticket, /publish, /disconnect) once SIGTERM has started the
// drain: a ticket issued now could never be redeemed here, and a publish
// would reach nobody (every connection is being closed) while claiming
// success. Retry-After and Connection: close send the caller's retry through
// a new connection, which the load balancer (watching /readyz) routes to
// another node. /auth keeps working: a token is not bound to a node.
func (s *server) refuseWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.draining.Load() {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Retry-After", "1")
		h.Set("Connection", "close")
		auth.WriteError(w, http.StatusServiceUnavailable, "server is shutting down, retry on another node")
	})
}
