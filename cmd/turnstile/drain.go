package main

import (
	"encoding/json"
	"net/http"
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
		writeError(w, http.StatusServiceUnavailable, "server is shutting down, retry on another node")
	})
}

// writeError answers {"error": msg} with status, never cached.
func writeError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	_, _ = w.Write(append(b, '\n'))
}
