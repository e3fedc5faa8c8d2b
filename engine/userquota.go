package engine

import "github.com/puzpuzpuz/xsync/v4"

// userQuota counts each user's upgraded connections across the loops, for
// Config.MaxConnsPerUser. The user is known only from the redeemed ticket,
// so the check runs after Redeem: an upgrade over the quota has spent its
// ticket (a ticket is cheap to get again; a store that could be asked
// "whose ticket is this" without spending it would cost admission a second
// round trip). xsync's Compute locks one bucket for a few instructions, so
// the loops never wait on each other for long; it allocates only for a
// user's first connection.
type userQuota struct {
	m *xsync.Map[string, int32]
}

// quotaFuncs are one loop's prebuilt Compute callbacks: built once, so a
// check allocates nothing. Only that loop's goroutine uses them.
type quotaFuncs struct {
	max  int32
	full bool // set by inc when the user is at max
	inc  func(old int32, loaded bool) (int32, xsync.ComputeOp)
	dec  func(old int32, loaded bool) (int32, xsync.ComputeOp)
}

func newQuotaFuncs(max int) *quotaFuncs {
	q := &quotaFuncs{max: int32(min(max, 1<<30))}
	q.inc = func(old int32, _ bool) (int32, xsync.ComputeOp) {
		if old >= q.max {
			q.full = true
			return old, xsync.CancelOp
		}
		return old + 1, xsync.UpdateOp
	}
	q.dec = func(old int32, loaded bool) (int32, xsync.ComputeOp) {
		if !loaded || old <= 1 {
			return 0, xsync.DeleteOp
		}
		return old - 1, xsync.UpdateOp
	}
	return q
}

// take reserves one connection for user; false when the user is at the
// quota. Runs on the loop that owns q.
func (u *userQuota) take(q *quotaFuncs, user string) bool {
	q.full = false
	u.m.Compute(user, q.inc)
	return !q.full
}

// give returns a connection of user. Runs on the loop that owns q.
func (u *userQuota) give(q *quotaFuncs, user string) {
	u.m.Compute(user, q.dec)
}

// connsOf returns how many upgraded connections user has now (0 when
// MaxConnsPerUser is off, since nothing is counted then). Safe from any
// goroutine.
func (s *Server) connsOf(user string) int {
	if s.quota.m == nil {
		return 0
	}
	n, _ := s.quota.m.Load(user)
	return int(n)
}
