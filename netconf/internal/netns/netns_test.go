package netns

import "testing"

// Names without the hnc- prefix are refused before anything runs, so
// Delete and Sweep can never touch a namespace these tests did not make.
func TestNamesOutsidePrefixRefused(t *testing.T) {
	for _, n := range []string{"default", "", "hnc-a/b", "x-hnc-"} {
		if _, err := Create(n); err == nil {
			t.Errorf("Create(%q) accepted", n)
		}
		if err := Sweep(n); err == nil {
			t.Errorf("Sweep(%q) accepted", n)
		}
	}
}
