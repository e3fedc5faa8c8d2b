package load

import "errors"

// Errors built once and shared.
var (
	errNotLoopback      = errors.New("load: target is not a loopback address (only 127.0.0.0/8 and ::1 are allowed)")
	errBadHistogram     = errors.New("load: histogram bucket out of range")
	errUnknownScenario  = errors.New("load: unknown scenario (want connect, reject, fanout, churn or echo)")
	errUnknownServer    = errors.New("load: unknown server (want turnstile, gorilla, gobwas, nbio or centrifuge)")
	errNoTarget         = errors.New("load: give -servers to start servers, or -http and -ws of a running one")
	errTooManyPerWorker = errors.New("load: too many connections per worker (at most 18000: one process may hold 20,000 fds); raise -workers")
	errIPv6Client       = errors.New("load: the epoll client dials IPv4 only; use a 127.0.0.x target")
	errHandshake        = errors.New("load: malformed handshake response")
	errFrame            = errors.New("load: malformed frame from server")
	errTimeout          = errors.New("load: timed out")
	errUnsupportedOS    = errors.New("load: the epoll client needs Linux")
	errNoMetric         = errors.New("load: metric not exposed")
	errNoWelcome        = errors.New("first message is not the welcome")
	errCentrifugeReply  = errors.New("centrifuge: error reply")
	errPayload          = errors.New("delivered payload differs from the published one")
	errClusterConfig    = errors.New("load: cluster mode")
)
