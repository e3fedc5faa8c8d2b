package engine

import "sync/atomic"

// RejectReason says why a handshake was refused; it indexes Stats.Rejected.
type RejectReason uint8

// Reasons for refusing a handshake (DESIGN 1.3).
const (
	RejectBadRequest     RejectReason = iota // 400
	RejectVersion                            // 426
	RejectNotFound                           // 404
	RejectHeaderTooLarge                     // 431
	RejectOrigin                             // 403
	RejectTicket                             // 401
	RejectCapacity                           // 503
	RejectTimeout                            // no complete request in time
	RejectFDBudget                           // 503 at accept: Config.MaxFDs sockets held
	RejectDraining                           // 503: Stop has begun
	RejectUserQuota                          // 429: the user is at MaxConnsPerUser
	RejectUnavailable                        // 503: the ticket store cannot be reached
	NumRejectReasons
)

var rejectNames = [NumRejectReasons]string{
	"bad_request", "version", "not_found", "header_too_large",
	"origin", "ticket", "capacity", "timeout", "fd_budget", "draining", "user_quota", "unavailable",
}

// String is the metric label of the reason, e.g. "ticket".
func (r RejectReason) String() string {
	if r < NumRejectReasons {
		return rejectNames[r]
	}
	return "unknown"
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	OpenConns     int64                    // authenticated connections now open
	DeflateConns  int64                    // of them, those that negotiated permessage-deflate
	Handshakes    uint64                   // handshakes accepted (101)
	Rejected      [NumRejectReasons]uint64 // handshakes refused, by reason
	MessagesIn    uint64                   // complete data messages received
	MessagesOut   uint64                   // data frames written (welcome, echo, pushes)
	Publishes     uint64                   // channel, user and broadcast publishes
	SlowConsumers uint64                   // connections closed for queueing too much

	Channels      int64 // channels with a local subscriber now
	Subscriptions int64 // (connection, channel) subscriptions now, personal ones included
	// Commands by type (CommandTypes) and result (0 ok, 1 error).
	Commands      [numCmdTypes][numResults]uint64
	CommandFloods uint64                  // connections closed for sending commands too fast
	Refreshes     [2]uint64               // session refreshes: [0] ok, [1] refused
	Recoveries    [2]uint64               // since served: [0] recovered, [1] recovered:false
	Closes        [NumCloseReasons]uint64 // connections ended, by reason (upgraded ones, and handshake timeouts)
}

// CommandTypes are the labels of Stats.Commands' first index.
var CommandTypes = cmdNames

// Indexes of Stats.Recoveries.
const (
	recoveredTrue  = 0
	recoveredFalse = 1
)

// loopCounters are written by one event loop only and read at scrape time;
// atomics make the read race-free without a lock.
type loopCounters struct {
	handshakes    atomic.Uint64
	rejected      [NumRejectReasons]atomic.Uint64
	messagesIn    atomic.Uint64
	messagesOut   atomic.Uint64
	slowConsumers atomic.Uint64
	subscriptions atomic.Int64
	commands      [numCmdTypes][numResults]atomic.Uint64
	commandFloods atomic.Uint64
	refreshes     [numResults]atomic.Uint64
	recoveries    [2]atomic.Uint64
	closes        [NumCloseReasons]atomic.Uint64
}

// Stats sums the counters of every event loop. Safe to call from any
// goroutine; it takes no lock an event loop could wait on.
func (s *Server) Stats() Stats {
	st := Stats{
		OpenConns:    s.openConns.Load(),
		DeflateConns: s.deflateConns.Load(),
		Publishes:    s.publishes.Load(),
	}
	for _, l := range s.loopList() {
		c := &l.counters
		st.Handshakes += c.handshakes.Load()
		for i := range st.Rejected {
			st.Rejected[i] += c.rejected[i].Load()
		}
		st.MessagesIn += c.messagesIn.Load()
		st.MessagesOut += c.messagesOut.Load()
		st.SlowConsumers += c.slowConsumers.Load()
		st.Subscriptions += c.subscriptions.Load()
		for t := range c.commands {
			for r := range c.commands[t] {
				st.Commands[t][r] += c.commands[t][r].Load()
			}
		}
		st.CommandFloods += c.commandFloods.Load()
		for i := range st.Refreshes {
			st.Refreshes[i] += c.refreshes[i].Load()
			st.Recoveries[i] += c.recoveries[i].Load()
		}
		for i := range st.Closes {
			st.Closes[i] += c.closes[i].Load()
		}
	}
	st.Channels = int64(s.hub.routes.Size())
	return st
}
