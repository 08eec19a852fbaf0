package muc

import (
	"fmt"
	"runtime"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// TestIdleOccupantHeap: what a room keeps for an idle occupant after a
// plain join (issue 12's target: RSS per idle occupant under 2 KiB beyond
// the session's own): the occupant join makes (slab.newOccupant with the
// cleaned join presence), its strings and its entry in the room's map,
// measured on the live heap after the garbage is collected. Before the
// fix a one-entry map of real JIDs and the cleaned presence (an empty
// element keeping its attribute array) made it ~740 B; now ~280 B (go test -run TestIdleOccupantHeap -v).
// And the number of heap objects: seven, then two (the occupant and its
// strings), now a sixteenth of a chunk and a share of a string block.
func TestIdleOccupantHeap(t *testing.T) {
	const n = 2000
	els := make([]*stream.Element, n)
	for i := range els {
		el, err := stream.ParseElement(fmt.Appendf(nil,
			"<presence xmlns='jabber:client' to='r@groups.example.test/n%d' id='j%d'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>", i, i))
		if err != nil {
			t.Fatal(err)
		}
		els[i] = el
	}
	occ := make(map[string]*occupant, n)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	var sl slab
	before, objsBefore := liveHeap()
	for i, el := range els {
		nick := fmt.Sprintf("n%d", i)
		bare := fmt.Sprintf("u%d@example.test", i)
		occ[keys[i]] = sl.newOccupant(nick, bare, bare+"/res", cleanPresence(el), "participant", fmt.Sprintf("%024d", i))
	}
	after, objsAfter := liveHeap()
	per := float64(int64(after)-int64(before)) / n
	objs := float64(int64(objsAfter)-int64(objsBefore)) / n
	t.Logf("live heap per idle occupant: %.0f B in %.1f objects", per, objs)
	if per > 500 {
		t.Errorf("live heap per idle occupant %.0f B, want at most 500 B", per)
	}
	// The number of objects matters as much as their bytes: each one a
	// join keeps sits among the join's garbage and keeps its span in use
	// (with seven, RssAnon grew ~3 KiB an idle occupant; with two, ~2;
	// see slab.go).
	if objs > 0.5 {
		t.Errorf("an idle occupant keeps %.2f heap objects, want at most 0.5 (occupants and strings in chunks)", objs)
	}
	runtime.KeepAlive(occ)
	runtime.KeepAlive(&sl)
	runtime.KeepAlive(els)
}

// TestSlabReuse: a room's occupant chunks are bounded by its peak, not
// by how many ever joined: the slot of an occupant that left is the next
// newcomer's, and an empty room gives its chunks back.
func TestSlabReuse(t *testing.T) {
	r := newRoom("r", "example.test", roomState{})
	join := func(i int) *occupant {
		nick := fmt.Sprintf("n%d", i)
		o := r.slab.newOccupant(nick, "u@example.test", "u@example.test/r", nil, "participant", "id")
		r.occ[foldNick(nick)] = o
		return o
	}
	stay := join(0)
	for i := 1; i < 100; i++ {
		o := join(i)
		r.drop(o)
		if o2 := join(i + 1000); o2 != o {
			t.Fatalf("join %d after a leave took a new slot, not the one freed", i)
		} else {
			r.drop(o2)
		}
		if o.real != nil || o.one[0].pres != nil {
			t.Fatal("a freed slot keeps its clients")
		}
	}
	if got := len(r.slab.occ); got != occChunk-2 {
		t.Errorf("the chunk has %d free slots left after 200 joins with at most 2 present, want %d", got, occChunk-2)
	}
	r.drop(stay)
	if r.slab.occ != nil || r.slab.free != nil || r.slab.str != nil {
		t.Error("an empty room keeps its chunks")
	}
}

func liveHeap() (bytes, objects uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC() // and what sync.Pools held through the first
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapObjects
}

// roomOf is a new room (its mutex held, as create leaves it) with n
// participants n0… (u0@example.test/res…) put straight in.
func roomOf(t *testing.T, n int) (*Service, *room) {
	t.Helper()
	m, _, _ := newService(t, Options{NoDefaultRoom: true})
	r, _, err := m.create("r", "owner@example.test", "owner", defaultConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		nick := fmt.Sprintf("n%d", i)
		bare := fmt.Sprintf("u%d@example.test", i)
		r.occ[foldNick(nick)] = r.slab.newOccupant(nick, bare, bare+"/res", nil, "participant", fmt.Sprintf("%024d", i))
	}
	return m, r
}

// TestBroadcastPresenceAllocs: a presence to n occupants (each join's
// second half) shares its children between the recipients, allocates
// each copy's attributes at their final size and parses its from address
// once: 1355 B per recipient when each got its own presence built from
// growing slices and Route parsed both addresses, ~510 B now. The garbage
// of a join burst is what grows the heap an idle occupant's RSS is
// mostly made of (issue 12).
func TestBroadcastPresenceAllocs(t *testing.T) {
	const n = 50
	m, r := roomOf(t, n)
	defer r.mu.Unlock()
	o := r.occ["n0"]
	bytes := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.broadcastPresence(r, o, "", nil, nil)
		}
	}).AllocedBytesPerOp()
	per := bytes / n
	t.Logf("bytes allocated per recipient of a presence: %d", per)
	if per > 650 {
		t.Errorf("a presence allocates %d B per recipient, want at most 650", per)
	}
}

// TestJoinPresencesAllocs: the other half of a join, the presence of
// each occupant to the newcomer, built with its attributes at their
// final size and routed with the newcomer's address parsed once (1351 B
// a presence before, built with growing slices and both addresses
// parsed per stanza; ~1060 B now).
func TestJoinPresencesAllocs(t *testing.T) {
	const n = 50
	m, r := roomOf(t, n)
	defer r.mu.Unlock()
	real := jid.MustParse("new@example.test/res")
	o := r.slab.newOccupant("new", "new@example.test", real.String(), nil, "participant", fmt.Sprintf("%024d", n))
	bytes := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.presencesTo(r, o, real)
		}
	}).AllocedBytesPerOp()
	per := bytes / n
	t.Logf("bytes allocated per presence to a newcomer: %d", per)
	if per > 1200 {
		t.Errorf("a presence to the newcomer allocates %d B, want at most 1200", per)
	}
}
