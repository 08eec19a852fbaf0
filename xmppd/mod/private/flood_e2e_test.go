//go:build e2e

package private_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/private"
)

// TestFloodBounded is the attack from issue 9 against the running server:
// one member on several connections stores new namespaces of maximal
// elements as fast as the server reads them (before the per-account
// totals this grew the database by 68 MB in under three minutes). The
// database file may grow by little more than the account's 1 MiB.
func TestFloodBounded(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	size := func() int64 {
		fi, err := os.Stat(dir.DB())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	const conns, dur = 4, 15 * time.Second
	payload := strings.Repeat("z", 60_000)
	var mu sync.Mutex
	var sent, refused, stored int64
	var wg sync.WaitGroup
	end := time.Now().Add(dur)
	for c := range conns {
		cl := iqtest.Login(t, d, "alice", fmt.Sprintf("r%d", c))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(end) && n < 10_000; n++ {
				var b strings.Builder
				for j := range 3 {
					fmt.Fprintf(&b, "<x xmlns='urn:flood:%d:%d:%d'>%s</x>", c, n, j, payload)
				}
				r := cl.IQ("set", "", q(b.String()))
				mu.Lock()
				sent += int64(b.Len())
				switch iqtest.Cond(r) {
				case "":
					stored += int64(b.Len())
				case "resource-constraint":
					refused++
				default:
					t.Errorf("unexpected answer %s", r)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	grown := size() - before
	u, _ := d.Store.Usage("alice")
	t.Logf("%d connections, %v: sent %d KiB of new namespaces, %d KiB accepted, %d sets refused; usage %+v; file grew %d KiB",
		conns, dur, sent>>10, stored>>10, refused, u[private.Kind], grown>>10)
	if u[private.Kind].Bytes > private.MaxBytes {
		t.Errorf("usage %d over the limit %d", u[private.Kind].Bytes, private.MaxBytes)
	}
	if grown > 3*private.MaxBytes {
		t.Errorf("database grew by %d bytes for one member's private storage (limit %d)", grown, private.MaxBytes)
	}
	if sent < 3*private.MaxBytes {
		t.Fatalf("sent only %d bytes: the flood never went far past the limit, the test proved nothing", sent)
	}
}
