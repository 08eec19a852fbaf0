package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTURNSection: a file written before the section existed gets calls
// on with the default range; a range a router could not hold falls back;
// the file never carries a TURN secret (it is made on the box and kept
// in xmppd's store).
func TestTURNSection(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(`{"version":1,"domain":"club.example"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if !c.TURN.Enabled || !c.TURN.RelayToLAN {
		t.Errorf("old file: %+v", c.TURN)
	}
	if f, l := c.TURN.RelayPorts(); f != 49152 || l != 49161 {
		t.Errorf("default range %d-%d", f, l)
	}
	for _, r := range [][2]int{{0, 0}, {80, 90}, {50000, 49999}, {40000, 60000}, {65530, 65540}} {
		if f, l := (TURN{RelayFirst: r[0], RelayLast: r[1]}).RelayPorts(); f != 49152 || l != 49161 {
			t.Errorf("range %v used as %d-%d", r, f, l)
		}
	}
	if f, l := (TURN{RelayFirst: 50000, RelayLast: 50004}).RelayPorts(); f != 50000 || l != 50004 {
		t.Errorf("valid range changed to %d-%d", f, l)
	}
	if err := Save(p, c); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), `"turn"`) || strings.Contains(strings.ToLower(string(b)), "secret") {
		t.Errorf("saved file:\n%s", b)
	}
}
