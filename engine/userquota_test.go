package engine

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"
)

// One user cannot take every slot: past MaxConnsPerUser an upgrade gets a
// complete 429 with a clear body (its ticket is spent: the user is known
// only from the redeemed ticket), other users are unaffected, and a slot
// freed by a close is usable again.
func TestMaxConnsPerUser(t *testing.T) {
	s, st := startServer(t, Config{MaxConnsPerUser: 2})
	first, _, _ := connect(t, s, st, "greedy")
	connect(t, s, st, "greedy")

	conn := dial(t, s)
	tk := st.add("greedy")
	if _, err := io.WriteString(conn, upgradeRequest("/ws", tk, "")); err != nil {
		t.Fatal(err)
	}
	resp := readResponse(t, bufio.NewReader(conn))
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || !strings.Contains(string(body), "too many connections for this user") ||
		!resp.Close {
		t.Fatalf("third connection of one user: %d %q, want 429 with a clear body", resp.StatusCode, body)
	}
	expectEOF(t, conn)
	if st.has(tk) {
		t.Error("the over-quota ticket is still unspent; the documented rule is that it is spent")
	}
	if n := s.Stats().Rejected[RejectUserQuota]; n != 1 {
		t.Errorf("user_quota rejections = %d, want 1", n)
	}
	connect(t, s, st, "modest") // another user still gets in

	first.Close()
	deadline := time.Now().Add(testTimeout)
	for s.connsOf("greedy") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("greedy holds %d connections after a close, want 1", s.connsOf("greedy"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	connect(t, s, st, "greedy")
	if n := s.connsOf("modest"); n != 1 {
		t.Errorf("modest holds %d, want 1", n)
	}
}
