// Package load is turnstile's load generator: it opens many WebSocket
// connections to a server on loopback, drives one scenario (connect, reject,
// fanout, churn, echo) and reports throughput and latency percentiles, side
// by side against peer servers started in the same run.
//
// The client side must never be the bottleneck: every worker process runs one
// epoll loop over non-blocking sockets (no goroutine per connection), and the
// work is spread over several worker processes (the binary re-executes
// itself) and source addresses 127.0.0.x, because one process may hold at most
// 20,000 file descriptors.
//
// It must never target anything but loopback (127.0.0.0/8 or ::1).
package load
