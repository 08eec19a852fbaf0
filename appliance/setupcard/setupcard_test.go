package setupcard

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestNewValidFind(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c, err := New()
		if err != nil || !Valid(c) {
			t.Fatalf("New() = %q, %v", c, err)
		}
		if seen[c] {
			t.Fatalf("code %s drawn twice", c)
		}
		seen[c] = true
		if got := Find(Text(c)); got != c {
			t.Errorf("Find(Text(%s)) = %q", c, got)
		}
		if Normalize(strings.ToLower(strings.ReplaceAll(c, "-", " "))) != c {
			t.Errorf("Normalize does not give back %s", c)
		}
	}
	if got := Find(Placeholder()); got != "" {
		t.Errorf("the placeholder holds a code: %q", got)
	}
	for _, bad := range []string{"ABCD-EFGH-JKMN-PQR", "ABCD-EFGH-JKMN-PQR0", "ABCDEFGHJKMNPQRS234", "abcd-efgh-jkmn-pqrs"} {
		if Valid(bad) {
			t.Errorf("Valid(%q)", bad)
		}
	}
}

// On first boot xmppd and cmd/firstboot may both find no code: they must
// end with the same one (the old code wrote with rename, last one won,
// and xmppd could hold a code the card did not show).
func TestLoadOrCreateRace(t *testing.T) {
	for range 20 {
		path := filepath.Join(t.TempDir(), "hearth", "setup-code")
		var wg sync.WaitGroup
		codes := make([]string, 8)
		made := make([]bool, 8)
		for i := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, created, err := LoadOrCreate(path)
				if err != nil {
					t.Error(err)
				}
				codes[i], made[i] = c, created
			}()
		}
		wg.Wait()
		n := 0
		for i, c := range codes {
			if c != codes[0] {
				t.Fatalf("two codes for one box: %q and %q", codes[0], c)
			}
			if made[i] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d callers say they made the code", n)
		}
		b, _ := os.ReadFile(path)
		if strings.TrimSpace(string(b)) != codes[0] {
			t.Fatalf("file holds %q, callers got %q", b, codes[0])
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 1 {
			t.Fatalf("left behind: %v", entries)
		}
	}
}

func TestLoadOrCreateKeepsAndReplacesEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "setup-code")
	os.WriteFile(path, []byte("abcd efgh jkmn pqrs\n"), 0o600)
	if c, created, err := LoadOrCreate(path); err != nil || created || c != "ABCD-EFGH-JKMN-PQRS" {
		t.Errorf("existing code: %q %v %v", c, created, err)
	}
	os.WriteFile(path, nil, 0o600)
	if c, created, err := LoadOrCreate(path); err != nil || !created || !Valid(c) {
		t.Errorf("empty file: %q %v %v", c, created, err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte(Placeholder()), 0o644)
	c, _ := New()
	if w, err := writeFile(dir, []byte(Text(c))); err != nil || !w {
		t.Fatalf("first write: %v %v", w, err)
	}
	if w, err := writeFile(dir, []byte(Text(c))); err != nil || w {
		t.Errorf("same text written again: %v %v", w, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if Find(string(b)) != c || !strings.Contains(string(b), URL(c)) {
		t.Errorf("card file:\n%s", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

// The card's file is read by a club secretary on any computer: plain
// words, Windows line ends, the link and its QR code.
func TestTextPlainWords(t *testing.T) {
	c, _ := New()
	txt := Text(c)
	for _, jargon := range []string{"XMPP", "JID", "MUC", "SRV", "DNS", "partition"} {
		if strings.Contains(txt, jargon) {
			t.Errorf("card text uses %q", jargon)
		}
	}
	if strings.Count(txt, "\n") != strings.Count(txt, "\r\n") {
		t.Error("card text has bare LF line ends")
	}
	qr, _ := QR(c)
	if !strings.Contains(txt, URL(c)) || !strings.Contains(txt, strings.ReplaceAll(qr, "\n", "\r\n")) {
		t.Error("card text lacks the link or its QR code")
	}
}
