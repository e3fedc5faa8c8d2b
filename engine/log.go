package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/turnstile-push/turnstile/internal/ratelog"
)

// logLimiter lets one message through per second; safe from any goroutine.
type logLimiter = ratelog.Limiter

// closeLog logs server-initiated closes and handshake timeouts at info, at
// most once per second per reason (so that a flood of one reason does not
// hide another). It never logs a ticket or a request line.
type closeLog struct {
	l       *slog.Logger
	limiter [NumCloseReasons]logLimiter
}

// conn logs the close of an upgraded connection. Runs on c's event loop.
func (cl *closeLog) conn(c *Conn, r CloseReason) {
	if cl.l == nil || !r.serverInitiated() || r >= NumCloseReasons {
		return
	}
	if ok, suppressed := cl.limiter[r].Allow(time.Now()); ok {
		cl.l.Info("connection closed", "reason", r.String(), "code", int(r.Code()),
			"user", c.User(), "conn", c.ID(), "remote", c.gc.RemoteAddr().String(),
			"suppressed_since_last", suppressed)
	}
}

// handshake logs a connection closed before its upgrade completed.
func (cl *closeLog) handshake(c *Conn, r CloseReason) {
	if cl.l == nil || r >= NumCloseReasons {
		return
	}
	if ok, suppressed := cl.limiter[r].Allow(time.Now()); ok {
		cl.l.Info("connection closed", "reason", r.String(), "remote", c.gc.RemoteAddr().String(),
			"suppressed_since_last", suppressed)
	}
}

// gnetLogger routes gnet's logs to slog. Debug and info go to debug level.
// Warnings and errors, such as "Accept() failed … too many open files",
// must reach an operator, but gnet repeats them for every event while the
// cause lasts, so they go to warn level at most once per second; the rest
// are counted and the count is logged with the next one.
type gnetLogger struct {
	l       *slog.Logger
	limiter *logLimiter
	now     func() time.Time // the clock; tests move it
}

func newGnetLogger(l *slog.Logger) gnetLogger {
	return gnetLogger{l: l, limiter: &logLimiter{}, now: time.Now}
}

func (g gnetLogger) debugf(format string, args ...any) {
	if g.l != nil && g.l.Enabled(context.Background(), levelDebug) {
		g.l.Debug("gnet: " + fmt.Sprintf(format, args...))
	}
}

func (g gnetLogger) warnf(format string, args ...any) {
	if g.l == nil {
		return
	}
	if ok, suppressed := g.limiter.Allow(g.now()); ok {
		g.l.Warn("gnet: "+fmt.Sprintf(format, args...), "suppressed_since_last", suppressed)
	}
}

func (g gnetLogger) Debugf(format string, args ...any) { g.debugf(format, args...) }
func (g gnetLogger) Infof(format string, args ...any)  { g.debugf(format, args...) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.warnf(format, args...) }
func (g gnetLogger) Errorf(format string, args ...any) { g.warnf(format, args...) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.warnf(format, args...) }
