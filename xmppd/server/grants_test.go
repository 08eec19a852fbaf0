package server

import (
	"slices"
	"testing"
)

// fakeContacts answers Subscribe with a fixed outcome and keeps who
// sees whom for Befriend.
type fakeContacts struct {
	noContacts
	out  SubOutcome
	from map[[2]string]bool // owner, contact
}

func (f *fakeContacts) Subscribe(string, string, string, bool, []byte) (SubOutcome, error) {
	return f.out, nil
}

func (f *fakeContacts) Relation(owner, contact string) (Relation, error) {
	return Relation{From: f.from[[2]string{owner, contact}]}, nil
}

func (f *fakeContacts) Befriend(a, b, _ string) error {
	f.from[[2]string{a, b + "@example.test"}] = true
	f.from[[2]string{b, a + "@example.test"}] = true
	return nil
}

// TestSubscriptionGranted: the installed Contacts fires the event for a
// subscription stanza that granted one (SendPresence) and for the new
// grants of a Befriend, never for one that grants nothing new.
func TestSubscriptionGranted(t *testing.T) {
	s := newServer(t)
	f := &fakeContacts{noContacts: noContacts{s}, from: map[[2]string]bool{}}
	s.SetContacts(f)
	var got []Grant
	SubscriptionGranted.On(s, func(g Grant) { got = append(got, g) })

	s.Contacts().Subscribe("alice", "bob@example.test", "subscribed", true, nil)
	f.out = SubOutcome{Forward: true, SendPresence: true}
	s.Contacts().Subscribe("alice", "bob@example.test", "subscribed", true, nil)
	if want := []Grant{{Owner: "alice", Contact: "bob@example.test"}}; !slices.Equal(got, want) {
		t.Fatalf("after Subscribe: %v, want %v", got, want)
	}
	got = nil
	f.from[[2]string{"carol", "alice@example.test"}] = true // carol already lets alice see her
	if err := s.Contacts().Befriend("alice", "carol", "Rowers"); err != nil {
		t.Fatal(err)
	}
	if want := []Grant{{Owner: "alice", Contact: "carol@example.test"}}; !slices.Equal(got, want) {
		t.Fatalf("after Befriend: %v, want %v", got, want)
	}
	got = nil
	s.Contacts().Befriend("alice", "carol", "Rowers")
	if len(got) != 0 {
		t.Fatalf("a second Befriend granted %v", got)
	}
}
