package onion

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/netconf/status"
)

// With a SOCKS socket asked for, tor gets a unix SOCKS port for onion
// traffic only, with tor's extended replies; without, none at all.
func TestSocksSocketArgs(t *testing.T) {
	for _, withSocks := range []bool{true, false} {
		var b status.Board
		var socks string
		s, logPath := fakeService(t, "publish", &b, func(o *Options) {
			if withSocks {
				socks = filepath.Join(o.DataDir, "socks.sock")
				o.SocksSocket = socks
			}
		})
		if withSocks {
			// A socket left by a killed tor is removed before the start.
			os.MkdirAll(filepath.Dir(socks), 0o700)
			os.WriteFile(socks, nil, 0o600)
		}
		stop := runService(t, s)
		waitCheck(t, &b, 20*time.Second, "published", func(c status.Check) bool { return c.Level == status.OK })
		stop()
		log, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		want := "--SocksPort 0 "
		if withSocks {
			want = "--SocksPort unix:" + socks + " OnionTrafficOnly ExtendedErrors "
			if _, err := os.Stat(socks); err == nil {
				t.Error("the old SOCKS socket was not removed")
			}
		}
		if !strings.Contains(string(log), want) {
			t.Errorf("SOCKS socket %v: fake tor's log lacks %q:\n%s", withSocks, want, log)
		}
	}
}

func TestSocksSocketValidated(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range []string{"socks.sock", filepath.Join(os.TempDir(), "elsewhere.sock"), filepath.Join(dir, "a b.sock"), dir,
		filepath.Join(dir, strings.Repeat("x", 110))} {
		_, err := New(Options{DataDir: dir, Reporter: &status.Board{}, Ports: testPorts, SocksSocket: bad})
		if err == nil {
			t.Errorf("SOCKS socket %q accepted", bad)
		}
	}
	if _, err := New(Options{DataDir: dir, Reporter: &status.Board{}, Ports: testPorts, SocksSocket: filepath.Join(dir, "socks.sock")}); err != nil {
		t.Error(err)
	}
}
