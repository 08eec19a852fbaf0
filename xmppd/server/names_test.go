package server

import "testing"

func TestNames(t *testing.T) {
	for _, c := range []struct {
		text, name string
		want       bool
	}{
		{"al: are you coming?", "al", true},
		{"I also think so", "al", false},            // push woke "al" for this
		{"carolyn and bob", "carol", false},         // a longer word
		{"thanks ＣＡＲＯＬ!", "carol", true},            // width and case folded
		{"see you, Anna Maria", "anna maria", true}, // a nickname with a space
		{"bob_", "bob", false},
		{"", "bob", false},
		{"bob", "", false},
	} {
		if got := Names(c.text, c.name); got != c.want {
			t.Errorf("Names(%q, %q) = %v, want %v", c.text, c.name, got, c.want)
		}
	}
}
