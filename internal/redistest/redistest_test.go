package redistest

import (
	"strings"
	"testing"
)

func TestStartPingStop(t *testing.T) {
	s := Start(t)
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Do("GET", "k"); err != nil || v != "v" {
		t.Fatalf("GET k = %q, %v; want v", v, err)
	}
	before := s.Calls()
	if _, err := s.Do("GET", "k"); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls(); got != before+1 {
		t.Fatalf("Calls moved from %d to %d, want +1", before, got)
	}
	s.Kill()
	if err := s.ping(); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart()
	if v, _ := s.Do("GET", "k"); v != "" {
		t.Fatalf("GET k after restart = %q, want nothing (no persistence)", v)
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t)
	info, err := c.Nodes[0].Do("CLUSTER", "INFO")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "cluster_known_nodes:3") {
		t.Fatalf("cluster info: %s", info)
	}
}
