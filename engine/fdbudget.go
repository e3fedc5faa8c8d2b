package engine

import (
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Why a file-descriptor budget: gnet (v2.9.7, acceptor_unix.go) treats every
// accept(2) error other than EAGAIN, EINTR, ECONNRESET and ECONNABORTED as
// fatal: EMFILE makes the loop's poller return ErrAcceptSocket, and the
// engine shuts down, closing every upgraded connection and the listener for
// good. So accept must never meet the process's fd limit. Each loop accepts
// on its own SO_REUSEPORT listener (gnet's reuse-port mode), where gnet
// calls OnOpen right after each accept and before the next one; OnOpen
// refuses a connection past Config.MaxFDs at once. Then the listener holds
// at most MaxFDs + Loops sockets at any moment, and the caller keeps the
// rest of the process (the HTTP listener, files, stores) inside the
// headroom it left below RLIMIT_NOFILE. (With gnet's main reactor instead,
// one accept pass drains the whole backlog before any OnOpen runs, so no
// budget check could bound it.)

// fdRefusalWindow is how long after the last refusal FDExhausted stays
// true, so that /readyz reports a state that comes and goes per accept.
const fdRefusalWindow = time.Second

// admitSocket counts a new TCP connection against MaxFDs. It reports false
// (and counts nothing) when the budget is spent: the caller refuses it.
// Runs on an event loop; the counter is shared by the loops.
func (s *Server) admitSocket() bool {
	n := s.fds.Add(1)
	if max := s.cfg.MaxFDs; max > 0 && n > int64(max) {
		s.fds.Add(-1)
		s.fdRefusedAt.Store(s.now())
		return false
	}
	return true
}

// refuseSocket answers a connection refused for the fd budget: a complete
// 503 that a client reads once it has sent its request, then close. It is
// counted and logged at most once per second.
func (s *Server) refuseSocket(gc gnet.Conn) ([]byte, gnet.Action) {
	l := s.loopFor(gc.EventLoop())
	l.counters.rejected[RejectFDBudget].Add(1)
	if s.log != nil {
		if ok, suppressed := s.fdLog.Allow(time.Now()); ok {
			s.log.Warn("file descriptor budget reached: refusing new connections",
				"max_fds", s.cfg.MaxFDs, "refused_since_last", suppressed+1)
		}
	}
	return rejectResponses[RejectFDBudget], gnet.Close
}

// FDExhausted reports whether the listener is at its fd budget now or
// refused a connection for it within the last second. Safe from any
// goroutine.
func (s *Server) FDExhausted() bool {
	if s.cfg.MaxFDs <= 0 {
		return false
	}
	if s.fds.Load() >= int64(s.cfg.MaxFDs) {
		return true
	}
	at := s.fdRefusedAt.Load()
	return at != 0 && s.now()-at < int64(fdRefusalWindow)
}

// resolveListenAddr binds addr once without SO_REUSEPORT, so that a port
// already in use is an error here (with SO_REUSEPORT alone, a second server
// of the same user would silently share the port), and so that port 0 is
// resolved once for all the loops' listeners. The probe is closed at once;
// it had no connections, so it leaves no TIME_WAIT behind.
func resolveListenAddr(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	defer ln.Close()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port == "0" || port == "" {
		_, port, _ = net.SplitHostPort(ln.Addr().String())
	}
	return net.JoinHostPort(host, port), nil
}
