package engine

import "testing"

// A connection's id is formatted from its loop and sequence number, and
// parseConnID gives them back only for an id of this node.
func TestConnIDRoundTrip(t *testing.T) {
	s, err := New(Config{Store: newMemStore(), Loops: 3})
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(s, nil, 2)
	c := &Conn{loop: l, seq: 123456789}
	id := c.ID()
	li, seq, ok := s.parseConnID(id)
	if !ok || li != 2 || seq != 123456789 {
		t.Fatalf("parseConnID(%q) = %d, %d, %v; want 2, 123456789, true", id, li, seq, ok)
	}
	if !s.mayHoldConn(l, id) || s.mayHoldConn(newLoop(s, nil, 1), id) {
		t.Fatalf("mayHoldConn(%q): only loop 2 may hold it", id)
	}
	for _, bad := range []string{"", s.nodeID, s.nodeID + ".2", s.nodeID + ".2.", s.nodeID + "..5",
		s.nodeID + ".2.zz!", s.nodeID + "x.2.5", "other.2.5", s.nodeID + ".2.5.6"} {
		if _, _, ok := s.parseConnID(bad); ok {
			t.Errorf("parseConnID(%q) accepted a malformed or foreign id", bad)
		}
	}
}
