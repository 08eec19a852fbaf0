package pep_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
)

// TestKilledPublisher is the child of TestSurvivesKill: it publishes items
// and prints "ACK n" after each iq result, until it is killed.
func TestKilledPublisher(t *testing.T) {
	dir := os.Getenv("PEP_KILL_STATE")
	if dir == "" {
		t.Skip("run by TestSurvivesKill")
	}
	d := xmpptest.Start(t, func(o *xmppd.Options) {
		o.State = state.Dir(dir)
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	alice := iqtest.Login(t, d, "alice", "a")
	opts := openOpts(field("pubsub#max_items", "max"))
	for i := range 200 {
		alice.Result("set", "", publish("n", fmt.Sprint("i", i), "<x xmlns='urn:t'>"+strings.Repeat("p", 100)+"</x>", opts))
		fmt.Printf("ACK %d\n", i)
	}
	fmt.Println("DONE")
	select {}
}

// TestSurvivesKill: every item whose publish was answered is there after
// the server process was killed with SIGKILL (bbolt committed before the
// iq result).
func TestSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKilledPublisher$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PEP_KILL_STATE="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
			acked, _ = strconv.Atoi(n)
			if acked >= 30 {
				break
			}
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	// Whatever was acknowledged while we were signalling counts too.
	go io.Copy(io.Discard, out)
	cmd.Wait()
	if acked < 30 {
		t.Fatalf("the child acknowledged only %d publishes", acked+1)
	}
	d, err := xmppd.Start(xmppd.Options{State: state.Dir(dir), Domain: xmpptest.Domain, C2S: "127.0.0.1:0", C2STLS: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	}()
	alice := iqtest.Login(t, d, "alice", "after")
	got := alice.Result("get", "", items("n", "")).FirstChild()
	have := map[string]bool{}
	for _, it := range got.Children() {
		have[it.Get("id")] = true
	}
	for i := 0; i <= acked; i++ {
		if !have[fmt.Sprint("i", i)] {
			t.Fatalf("item i%d was acknowledged before SIGKILL and is gone (%d items after restart)", i, len(have))
		}
	}
	t.Logf("%d acknowledged items, %d after restart", acked+1, len(have))
}
