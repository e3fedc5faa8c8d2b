package engine

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// While Stop drains, a new upgrade gets a complete 503 with Retry-After
// (so a client retries elsewhere) and keeps its ticket, instead of a
// connection closed without an answer.
func TestUpgradeDuringDrainGets503(t *testing.T) {
	s, st := startServer(t, Config{})
	open, _, _ := connect(t, s, st, "maggie") // keeps the drain going
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		stopped <- s.Stop(ctx)
	}()
	deadline := time.Now().Add(testTimeout)
	for s.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("still ready after Stop began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 3 {
		conn := dial(t, s)
		tk := st.add("maggie")
		if _, err := io.WriteString(conn, upgradeRequest("/ws", tk, "")); err != nil {
			t.Fatal(err)
		}
		resp := readResponse(t, bufio.NewReader(conn))
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "shutting down") {
			t.Fatalf("upgrade %d during drain: %d %v %q, want 503 with Retry-After", i, resp.StatusCode, resp.Header, body)
		}
		if !st.has(tk) {
			t.Fatal("a ticket refused while draining was spent")
		}
	}
	if n := s.Stats().Rejected[RejectDraining]; n != 3 {
		t.Errorf("draining rejections = %d, want 3", n)
	}
	open.Close()
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
