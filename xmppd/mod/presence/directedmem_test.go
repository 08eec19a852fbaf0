package presence

import (
	"fmt"
	"runtime"
	"testing"
)

// TestDirectedHeap: what a session keeps for one directed presence (every
// room it joins is one; issue 12: under 2 KiB of RSS per idle occupant).
// With a map per session it was ~300 B of live heap a room, more than the
// room's own record of the occupant; a list keeps the JID and 16 B.
func TestDirectedHeap(t *testing.T) {
	const n = 2000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("room%d@groups.example.test/nick%d", i, i)
	}
	ds := make([]*directed, n)
	before, objsBefore := liveHeap()
	for i := range ds {
		ds[i] = newDirected()
		ds[i].add(keys[i])
	}
	after, objsAfter := liveHeap()
	per := float64(int64(after)-int64(before)) / n
	objs := float64(int64(objsAfter)-int64(objsBefore)) / n
	t.Logf("live heap per session with one directed presence: %.0f B in %.1f objects", per, objs)
	if per > 80 {
		t.Errorf("live heap per directed presence %.0f B, want at most 80 B", per)
	}
	// Each object a join keeps holds a span among the join's garbage in
	// use (see muc's newOccupant): the record and nothing else.
	if objs > 1.5 {
		t.Errorf("a session with one directed presence keeps %.1f objects for it, want 1", objs)
	}
	runtime.KeepAlive(ds)
	runtime.KeepAlive(keys)
}

// TestDirectedList: the list behaves as the set it replaced.
func TestDirectedList(t *testing.T) {
	d := newDirected()
	for _, k := range []string{"a@x/r", "b@x", "a@x/r", "c@x"} {
		d.add(k)
	}
	d.remove("b@x")
	d.remove("nobody@x")
	if got := fmt.Sprint(d.take()); got != "[a@x/r c@x]" {
		t.Errorf("take = %s, want [a@x/r c@x]", got)
	}
	if len(d.take()) != 0 {
		t.Error("take did not forget")
	}
	for i := range maxDirected + 5 {
		d.add(fmt.Sprint(i))
	}
	if len(d.to) != maxDirected {
		t.Errorf("%d remembered, want the bound %d", len(d.to), maxDirected)
	}
}

func liveHeap() (bytes, objects uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapObjects
}
