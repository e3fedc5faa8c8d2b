package broker

import "testing"

// The bound: a history append allocates at most one object, the
// message copy; a recovery read allocates one, the result slice.
func TestAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race; run without it")
	}
	m, err := NewMemory(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h := &nopHandler{} // the recorder would count its own allocations
	if err := m.Start(h); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	subscribe(t, m, "news")
	for range 2 * DefaultHistorySize { // fill the ring: the steady state
		publish(t, m, "news", `"x"`)
	}
	data := []byte(`{"n":1}`)
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := m.Publish(ctx, "news", data, PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("Publish to a full history: %.2f allocations, want at most 1", n)
	}
	pos, _ := m.Position(ctx, "news")
	since := Position{Offset: pos.Offset - 50, Epoch: pos.Epoch}
	if n := testing.AllocsPerRun(1000, func() {
		if pubs, _, err := m.History(ctx, "news", since); err != nil || len(pubs) != 50 {
			t.Fatal(len(pubs), err)
		}
	}); n > 1 {
		t.Errorf("History of 50: %.2f allocations, want 1", n)
	}
	if h.n.Load() < 1000 {
		t.Fatalf("the handler saw %d publications: the measured path did not deliver", h.n.Load())
	}
}

// A history of one message replaces it in place: still one allocation.
func TestAllocationsHistoryOfOne(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race; run without it")
	}
	m, err := NewMemory(MemoryConfig{HistorySize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(&nopHandler{}); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	publish(t, m, "one", "0")
	data := []byte(`1`)
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := m.Publish(ctx, "one", data, PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("Publish to a history of one: %.2f allocations, want at most 1", n)
	}
}
