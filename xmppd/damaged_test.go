package xmppd

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/store"
)

// A database that fails its page check at start: the box's web page says
// so in words and what to do, instead of "starting" forever while xmppd
// is restarted in a loop.
func TestDamagedStorageSaysSo(t *testing.T) {
	dir := state.Dir(t.TempDir())
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir.DB())
	if err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	st.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("big"))
		if err != nil {
			return err
		}
		for i := range 2000 {
			if err := b.Put([]byte(fmt.Sprintf("key-%05d", i)), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	st.View(func(tx *bolt.Tx) error {
		root, pageSize = int64(tx.Bucket([]byte("big")).RootPage()), int64(tx.DB().Info().PageSize)
		return nil
	})
	st.Close()
	f, err := os.OpenFile(dir.DB(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte(strings.Repeat("\x5a", int(pageSize))), root*pageSize)
	f.Close()

	d, err := Start(Options{State: dir, Domain: "hearth.localhost", C2S: "127.0.0.1:0", Web: "127.0.0.1:0"})
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("start on a damaged file: %v", err)
	}
	if d == nil || d.Web == nil {
		t.Fatal("no web server left to say so")
	}
	defer d.Web.Close()
	resp, err := http.Get("http://" + d.Web.Addr.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "storage on this box is damaged") || !strings.Contains(string(body), "I have a backup") {
		t.Fatalf("page %d: %s", resp.StatusCode, body)
	}
}
