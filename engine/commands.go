package engine

import (
	"github.com/turnstile-push/turnstile/auth/ticket"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/turnstile-push/turnstile/engine/broker"
)

// The command rate limit (DESIGN 1.4): a token bucket of cmdBurst tokens
// refilled at cmdRate per second. A client past it is closed with 1008.
const (
	cmdRate  = 100
	cmdBurst = 100
)

// allowCommand takes one token from c's bucket, or reports false.
func (c *Conn) allowCommand(now int64) bool {
	const per = int64(time.Second) / cmdRate
	if c.cmdLast == 0 {
		c.cmdTokens, c.cmdLast = cmdBurst, now
	} else if add := (now - c.cmdLast) / per; add > 0 {
		c.cmdTokens = int32(min(int64(c.cmdTokens)+add, cmdBurst))
		c.cmdLast += add * per
		if c.cmdTokens == cmdBurst {
			c.cmdLast = now
		}
	}
	if c.cmdTokens <= 0 {
		return false
	}
	c.cmdTokens--
	return true
}

// Results of a command, for metrics.
const (
	resultOK = iota
	resultError
	numResults
)

// command reads one client data message as a command and answers it.
func (l *loop) command(c *Conn, op ws.OpCode, msg []byte) gnet.Action {
	if !c.allowCommand(l.srv.now()) {
		l.counters.commandFloods.Add(1)
		return l.fail(c, CloseCommandFlood)
	}
	if op != ws.OpText {
		l.refuse(c, cmdUnknown, cmdID{}, codeBadRequest, reasonBinary)
		return gnet.None
	}
	cmd, reason := l.parser.parseCommand(msg)
	if reason != "" {
		l.refuse(c, cmd.typ, cmd.id, codeBadRequest, reason)
		return gnet.None
	}
	switch cmd.typ {
	case cmdPing:
		l.counters.commands[cmdPing][resultOK].Add(1)
		l.reply(c, appendPong(l.body[:0], cmd.id))
	case cmdSubscribe:
		l.subscribe(c, &cmd)
	case cmdUnsubscribe:
		l.unsubscribe(c, &cmd)
	case cmdRefresh:
		l.refresh(c, &cmd)
	}
	return gnet.None
}

// refuse answers a command with an error frame; the connection stays open.
func (l *loop) refuse(c *Conn, t cmdType, id cmdID, code, reason string) {
	l.counters.commands[t][resultError].Add(1)
	l.reply(c, appendError(l.body[:0], id, code, reason))
}

// checkChannel says whether c may use channel: "" if so, else the error
// code and reason. personal reports the connection's own "#<user>".
func (l *loop) checkChannel(c *Conn, channel []byte) (personal bool, code, reason string) {
	if len(channel) > 0 && channel[0] == '#' {
		if string(channel) == c.personal {
			return true, "", ""
		}
		return false, codeForbidden, reasonOtherUser
	}
	if !ValidChannel(channel) {
		return false, codeBadRequest, reasonBadName
	}
	if !granted(c.grants, channel) {
		return false, codeForbidden, reasonForbidden
	}
	return false, "", ""
}

func (l *loop) subscribe(c *Conn, cmd *command) {
	personal, code, reason := l.checkChannel(c, cmd.channel)
	if code != "" {
		l.refuse(c, cmdSubscribe, cmd.id, code, reason)
		return
	}
	if i := c.findSub(cmd.channel); i >= 0 {
		// Already subscribed: idempotent, one copy of each message.
		lc := c.subs[i].lc
		s := &lc.subs[c.subs[i].si]
		if s.pending {
			if ps := l.pend[pendKey{c, lc}]; ps != nil && !ps.personal {
				ps.ids = append(ps.ids, cmd.id)
				return
			}
		}
		l.counters.commands[cmdSubscribe][resultOK].Add(1)
		l.reply(c, appendSubscribed(l.body[:0], cmd.id, lc.name, position{offset: max(s.from, lc.last), epoch: lc.epoch}, recoveryNone, 0))
		return
	}
	if personal {
		return // cannot happen: the personal channel is always subscribed
	}
	if len(c.subs)-1 >= l.srv.cfg.MaxChannelsPerConn {
		l.refuse(c, cmdSubscribe, cmd.id, codeTooManyChannels, reasonTooMany)
		return
	}
	var since *broker.Position
	if cmd.since {
		since = &broker.Position{Offset: cmd.sinceOff, Epoch: string(cmd.epoch)}
	}
	l.startSub(c, string(cmd.channel), cmd.id, since)
}

func (l *loop) unsubscribe(c *Conn, cmd *command) {
	personal, code, reason := l.checkChannel(c, cmd.channel)
	switch {
	case personal:
		code, reason = codeBadRequest, reasonPersonal
	case code == codeForbidden:
		code = "" // not subscribed, certainly: nothing to refuse
	}
	if code != "" {
		l.refuse(c, cmdUnsubscribe, cmd.id, code, reason)
		return
	}
	if i := c.findSub(cmd.channel); i >= 0 {
		lc, pending := l.removeSub(c, i)
		if pending {
			if ps := l.pend[pendKey{c, lc}]; ps != nil {
				ps.cancelled = true // its completion releases the node's subscription
				delete(l.pend, pendKey{c, lc})
				for _, id := range ps.ids { // the subscribes it cancels are answered
					l.reply(c, appendError(l.body[:0], id, codeBadRequest, "unsubscribed before the subscription completed"))
				}
			}
		} else {
			l.release(lc.name)
		}
	}
	l.counters.commands[cmdUnsubscribe][resultOK].Add(1)
	l.reply(c, appendUnsubscribed(l.body[:0], cmd.id, string(cmd.channel)))
}

// refresh extends c's session with a fresh ticket of the same user (DESIGN
// 1.7): the ticket is redeemed like an upgrade's, and its claims replace
// the connection's expiry and grants.
func (l *loop) refresh(c *Conn, cmd *command) {
	if l.refreshAsync(c, cmd) {
		return // answered from refresh_async.go
	}
	claims, err := l.srv.cfg.Store.Redeem(cmd.ticket, time.Now())
	l.refreshed(c, cmd.id, claims, err)
}

// refreshed answers a refresh with its redeem's result.
func (l *loop) refreshed(c *Conn, id cmdID, claims ticket.Claims, err error) {
	// Bound like an upgrade's ticket (DESIGN 1.7): one issued to a page
	// refreshes only a connection opened from that page's Origin.
	if err != nil || claims.Subject != c.User() || (claims.Origin != "" && claims.Origin != c.origin) {
		l.counters.refreshes[resultError].Add(1)
		l.refuse(c, cmdRefresh, id, codeForbidden, reasonRefreshBad)
		return
	}
	var expires int64
	c.expires = 0
	if exp := claims.SessionExpires; !exp.IsZero() {
		c.expires = sessionEnd(l.srv.now(), time.Until(exp))
		expires = exp.Unix()
	}
	c.grants = cloneStrings(claims.Channels) // as at the upgrade: not the arena's
	l.counters.refreshes[resultOK].Add(1)
	l.counters.commands[cmdRefresh][resultOK].Add(1)
	l.reply(c, appendRefreshed(l.body[:0], id, expires))
}
