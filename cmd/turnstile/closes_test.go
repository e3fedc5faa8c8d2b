package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metric returns the value of one sample of /metrics, e.g.
// `turnstile_closes_total{reason="idle_timeout"}`, or -1 if it is absent.
func (s *testServer) metric(t *testing.T, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(s.metrics(t), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", sample, line)
			}
			return v
		}
	}
	return -1
}

// awaitMetric waits until a sample reaches at least want.
func (s *testServer) awaitMetric(t *testing.T, sample string, want float64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v := s.metric(t, sample)
		if v >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want >= %v", sample, v, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logRecords returns the server's JSON log records whose msg is msg.
func (s *testServer) logRecords(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s.Logs(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// awaitCloseLog waits for an info "connection closed" record with reason.
func (s *testServer) awaitCloseLog(t *testing.T, reason string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, rec := range s.logRecords("connection closed") {
			if rec["reason"] == reason {
				if rec["level"] != "INFO" {
					t.Fatalf("close logged at %v, want INFO: %v", rec["level"], rec)
				}
				return rec
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no \"connection closed\" log with reason %s", reason)
	return nil
}

// Operators see why the server closed connections: each server-initiated
// close is counted by reason in /metrics and logged at info with the user
// and the connection id, and never with the ticket.
func TestEndToEndClosesCountedAndLogged(t *testing.T) {
	s := startBinary(t, "-idle-timeout", "1500ms", "-ping-interval", "1s", "-handshake-timeout", "1s")

	// Idle: a client that never sends a frame (not even a pong).
	tkt, url := s.Ticket(t, s.Login(t, "maggie", "secret"))
	c := dial(t, url)
	welcome := c.read(t)
	// Read raw bytes: a WebSocket reader would answer the pings.
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	rest, _ := io.ReadAll(c.rw)
	if !bytes.Contains(rest, []byte("\x88\x0e\x03\xe9idle timeout")) {
		t.Fatalf("idle client got %q, want close 1001 \"idle timeout\"", rest)
	}
	s.awaitMetric(t, `turnstile_closes_total{reason="idle_timeout"}`, 1)
	rec := s.awaitCloseLog(t, "idle_timeout")
	if rec["user"] != "maggie" || rec["conn"] != welcome["conn"] || rec["code"] != float64(1001) {
		t.Fatalf("idle log = %v, want user maggie, conn %v, code 1001", rec, welcome["conn"])
	}

	// Protocol error: an unmasked client frame.
	c2 := connect(t, s, "maggie", "secret")
	if _, err := c2.conn.Write([]byte{0x81, 0x01, 'x'}); err != nil {
		t.Fatal(err)
	}
	if code := c2.readClose(t); code != 1002 {
		t.Fatalf("unmasked frame closed with %d, want 1002", code)
	}
	s.awaitMetric(t, `turnstile_closes_total{reason="protocol_error"}`, 1)
	s.awaitCloseLog(t, "protocol_error")

	// Handshake timeout: TCP that never sends a request.
	raw, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(s.WS, "/ws"), "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, raw); err != nil {
		t.Fatalf("silent connection: %v, want closed by the server", err)
	}
	s.awaitMetric(t, `turnstile_closes_total{reason="handshake_timeout"}`, 1)
	s.awaitCloseLog(t, "handshake_timeout")

	// A client's own close is counted, not logged as news.
	c3 := connect(t, s, "maggie", "secret")
	if _, err := c3.conn.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	if code := c3.readClose(t); code != 1000 {
		t.Fatalf("client close echoed %d, want 1000", code)
	}
	s.awaitMetric(t, `turnstile_closes_total{reason="client_close"}`, 1)
	for _, rec := range s.logRecords("connection closed") {
		if rec["reason"] == "client_close" {
			t.Fatalf("a client's close was logged: %v", rec)
		}
	}
	if strings.Contains(s.Logs(), tkt) {
		t.Fatal("the ticket appears in the server's log")
	}
}

// -max-conns-per-user: past it an upgrade gets 429; another user still
// gets in.
func TestEndToEndMaxConnsPerUser(t *testing.T) {
	s := startBinary(t, "-max-conns-per-user", "2")
	connect(t, s, "maggie", "secret")
	connect(t, s, "maggie", "secret")
	_, url := s.Ticket(t, s.Login(t, "maggie", "secret"))
	if code := dialStatus(t, url); code != http.StatusTooManyRequests {
		t.Fatalf("third connection of maggie: %d, want 429", code)
	}
	if v := s.metric(t, `turnstile_handshake_rejections_total{reason="user_quota"}`); v != 1 {
		t.Fatalf("user_quota rejections = %v, want 1", v)
	}
}
