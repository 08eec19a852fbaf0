package pep

import (
	"slices"
	"testing"
)

// TestApplyKeepsEmptyFields: a submitted form whose fields carry no value
// changes nothing and is not refused (Converse sends its whole form back);
// "max" is the service's maximum, and that is advertised.
func TestApplyKeepsEmptyFields(t *testing.T) {
	c := defaultConfig()
	got, err := c.apply(map[string][]string{"pubsub#publish_model": nil, "pubsub#access_model": {}, "pubsub#max_items": {"max"}})
	if err != nil {
		t.Fatalf("form with empty fields refused: %v", err)
	}
	if got.Access != c.Access || got.MaxItems != MaxItems {
		t.Fatalf("config after the form: %+v", got)
	}
	if _, err := c.apply(map[string][]string{"pubsub#publish_model": {"open"}}); err == nil {
		t.Fatal("publish_model open accepted on PEP")
	}
	if !slices.Contains(features, "http://jabber.org/protocol/pubsub#config-node-max") {
		t.Fatal("pubsub#config-node-max not advertised: Converse then asks for 9999 items and cannot save bookmarks")
	}
}
