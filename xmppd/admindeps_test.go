package xmppd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	setupui "github.com/hearthchat/hearth/setup-ui"
	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/sasl"
	"github.com/hearthchat/hearth/xmppd/store"
)

func startTest(t *testing.T, dir state.Dir) *Daemon {
	t.Helper()
	d, err := Start(Options{State: dir, Domain: "hearth.localhost", C2S: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dial(t *testing.T, d *Daemon, user, pw string) *client.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Addr: d.C2SAddr.String(), Domain: d.Server.Domain, User: user, Password: pw,
		TLS:       &tls.Config{InsecureSkipVerify: true, ServerName: d.Server.Domain},
		Mechanism: client.ScramSHA256, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("%s login: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A removed member is disabled at once (logins refused, devices closed),
// survives a restart disabled, can be restored, and is deleted only after
// 7 days counted on the monotonic clock while xmppd runs: a wall clock
// that jumped a year ahead does not delete early.
func TestRemoveMember(t *testing.T) {
	dir := state.Dir(t.TempDir())
	d := startTest(t, dir)
	for _, u := range []string{"anna", "bob", "carol"} {
		if err := d.Store.CreateAccount(u, u+"-password", u == "anna"); err != nil {
			t.Fatal(err)
		}
	}
	m := webMembers{d}
	bob := dial(t, d, "bob", "bob-password")
	if err := m.Remove("bob"); err != nil {
		t.Fatal(err)
	}
	// bob's connected device is closed with a stream error.
	bob.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		b, err := bob.ReadStanza()
		if err != nil {
			break
		}
		if bytes.Contains(b, []byte("not-authorized")) {
			break
		}
	}
	waitFor(t, "bob's session to end", func() bool { return len(d.Server.Router.Sessions("bob")) == 0 })
	if err := login(t, d, "bob", "bob-password"); err == nil {
		t.Fatal("removed bob logged in")
	}
	if ok, _ := (webAccounts{st: d.Store}).Check("bob", "bob-password"); ok {
		t.Fatal("removed bob logged in to the web pages")
	}
	list, _ := m.List()
	for _, x := range list {
		if x.User == "bob" && (!x.Removing || time.Until(x.DeleteAt) < 6*24*time.Hour) {
			t.Errorf("bob listed as %+v", x)
		}
	}

	// Undo: carol removed and restored logs in again.
	if err := m.Remove("carol"); err != nil {
		t.Fatal(err)
	}
	if err := m.Undo("carol"); err != nil {
		t.Fatal(err)
	}
	if err := login(t, d, "carol", "carol-password"); err != nil {
		t.Fatalf("carol after undo: %v", err)
	}
	if err := m.Undo("carol"); err != setupui.ErrNoMember {
		t.Errorf("undo of nothing: %v", err)
	}

	// Six days pass: still there, still disabled.
	if err := d.removals.countDown(6 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Store.Account("bob"); err != nil {
		t.Fatalf("bob deleted after 6 days: %v", err)
	}
	// The wall clock jumps a year ahead (a Pi without a battery clock
	// whose NTP answer was wrong) and xmppd restarts: nothing is deleted,
	// bob stays disabled.
	d.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRemovals)
		var r removal
		json.Unmarshal(b.Get([]byte("bob")), &r)
		r.Since = r.Since.Add(-365 * 24 * time.Hour)
		v, _ := json.Marshal(r)
		return b.Put([]byte("bob"), v)
	})
	d.Shutdown(context.Background())
	d = startTest(t, dir)
	defer d.Shutdown(context.Background())
	if _, err := d.Store.Account("bob"); err != nil {
		t.Fatalf("bob deleted at restart: %v", err)
	}
	if err := login(t, d, "bob", "bob-password"); err == nil {
		t.Fatal("removed bob logged in after a restart")
	}
	// The seventh day: deleted for good, with his circles membership.
	c := webCircles{d.Server}
	c.Create("Rowers")
	if err := c.Add("Rowers", "anna"); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("Rowers", "bob"); err != nil {
		t.Fatal(err)
	}
	// The minute covers the time credited at removal (removals.go).
	if err := d.removals.countDown(24*time.Hour + time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Store.Account("bob"); err != store.ErrNotFound {
		t.Fatalf("bob after 7 days: %v", err)
	}
	if _, ok := removing(d.Store, "bob"); ok {
		t.Error("removal record left behind")
	}
	if cs, _ := c.List(); len(cs) != 1 || strings.Join(cs[0].Members, ",") != "anna" {
		t.Errorf("circles after deletion: %+v", cs)
	}
	if err := login(t, d, "anna", "anna-password"); err != nil {
		t.Errorf("anna: %v", err)
	}
	// Deleted another way during the grace (the admin API): the record
	// goes too, and a new account of that name is not disabled.
	d.Store.CreateAccount("dora", "dora-password", false)
	m = webMembers{d}
	m.Remove("dora")
	if err := d.Server.DeleteAccount("dora"); err != nil {
		t.Fatal(err)
	}
	d.Store.CreateAccount("dora", "dora-password-2", false)
	if err := login(t, d, "dora", "dora-password-2"); err != nil {
		t.Errorf("new dora: %v", err)
	}
}

// Members of a circle find each other in their contact lists, with the
// circle's name as the group, both subscriptions granted.
func TestCircles(t *testing.T) {
	d := startTest(t, state.Dir(t.TempDir()))
	defer d.Shutdown(context.Background())
	for _, u := range []string{"anna", "bob", "carol"} {
		d.Store.CreateAccount(u, u+"-password", false)
	}
	c := webCircles{d.Server}
	if err := c.Create("Rowers"); err != nil {
		t.Fatal(err)
	}
	// anna is online when bob joins: bob's app is told at once.
	anna := dial(t, d, "anna", "anna-password")
	anna.Send([]byte(`<iq type="get" id="a1"><query xmlns="jabber:iq:roster"/></iq>`))
	anna.Send([]byte(`<presence><status>on the water</status></presence>`))
	waitFor(t, "anna available", func() bool { all, _ := d.Server.Router.Available("anna"); return len(all) > 0 })
	bobConn := dial(t, d, "bob", "bob-password")
	bobConn.Send([]byte(`<iq type="get" id="b1"><query xmlns="jabber:iq:roster"/></iq>`))
	bobConn.Send([]byte(`<presence/>`))
	waitFor(t, "bob available", func() bool { all, _ := d.Server.Router.Available("bob"); return len(all) > 0 })
	if err := c.Create("Rowers"); err == nil {
		t.Error("a second circle of the same name")
	}
	for _, u := range []string{"anna", "bob", "carol"} {
		if err := c.Add("Rowers", u); err != nil {
			t.Fatal(err)
		}
	}
	bobConn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		b, err := bobConn.ReadStanza()
		if err != nil {
			t.Fatalf("bob never saw anna online: %v", err)
		}
		if bytes.HasPrefix(b, []byte("<presence")) && bytes.Contains(b, []byte("on the water")) {
			break
		}
	}
	for _, p := range [][2]string{{"anna", "bob"}, {"bob", "anna"}, {"carol", "anna"}, {"bob", "carol"}} {
		r, err := d.Server.Contacts().Relation(p[0], p[1]+"@hearth.localhost")
		if err != nil || !r.To || !r.From {
			t.Errorf("%s → %s: %+v %v", p[0], p[1], r, err)
		}
	}
	// The roster item carries the circle's name as its group.
	conn := dial(t, d, "carol", "carol-password")
	conn.Send([]byte(`<iq type="get" id="r1"><query xmlns="jabber:iq:roster"/></iq>`))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		b, err := conn.ReadStanza()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(`id='r1'`)) {
			if bytes.Count(b, []byte("<group>Rowers</group>")) != 2 || !bytes.Contains(b, []byte(`subscription='both'`)) {
				t.Errorf("carol's roster: %s", b)
			}
			break
		}
	}
	if err := c.Add("Nope", "anna"); err == nil {
		t.Error("added to a circle that does not exist")
	}
	if err := c.Add("Rowers", "nobody"); err == nil {
		t.Error("added an account that does not exist")
	}
}

// An announcement reaches members online at once and is stored for the
// others — more of them than one sender's share of a member's offline
// storage (the box is not held to it); a member whose whole storage is
// full is reported, not silently skipped.
func TestAnnounce(t *testing.T) {
	d := startTest(t, state.Dir(t.TempDir()))
	defer d.Shutdown(context.Background())
	for _, u := range []string{"anna", "bob", "carol"} {
		d.Store.CreateAccount(u, u+"-password", false)
	}
	anna := dial(t, d, "anna", "anna-password")
	anna.Send([]byte(`<presence/>`))
	waitFor(t, "anna available", func() bool { all, _ := d.Server.Router.Available("anna"); return len(all) > 0 })
	// carol's offline storage is full (1000 messages from others).
	if err := d.Store.Update(func(tx *bolt.Tx) error {
		return store.Charge(tx, "carol", "offline", 1000, 1000, store.Limit{Bytes: 1 << 30, Items: 1 << 30})
	}); err != nil {
		t.Fatal(err)
	}
	const n = 300 // > offline.MaxMessages / offline.SenderShare (250)
	for i := 0; i < n; i++ {
		res, err := d.announce("Boat house closed on Sunday")
		if err != nil {
			t.Fatal(err)
		}
		if res.Delivered != 1 || res.Stored != 1 || len(res.Failed) != 1 || res.Failed[0] != "carol" {
			t.Fatalf("announcement %d: %+v", i+1, res)
		}
	}
	got := 0
	anna.SetReadDeadline(time.Now().Add(10 * time.Second))
	for got < n {
		b, err := anna.ReadStanza()
		if err != nil {
			t.Fatalf("anna got %d of %d: %v", got, n, err)
		}
		if bytes.Contains(b, []byte("Boat house closed")) && bytes.Contains(b, []byte(`from='hearth.localhost'`)) {
			got++
		}
	}
	bob := dial(t, d, "bob", "bob-password")
	bob.Send([]byte(`<presence/>`))
	got = 0
	bob.SetReadDeadline(time.Now().Add(20 * time.Second))
	for got < n {
		b, err := bob.ReadStanza()
		if err != nil {
			t.Fatalf("bob got %d of %d stored announcements: %v", got, n, err)
		}
		if bytes.Contains(b, []byte("Boat house closed")) {
			got++
		}
	}
}

// The health page's figures come from the box, and the update status and
// "check now" from the update agent's socket (or its status file when the
// socket does not answer), in the agent's own JSON.
func TestHealthAndUpdates(t *testing.T) {
	dir := state.Dir(t.TempDir())
	d := startTest(t, dir)
	defer d.Shutdown(context.Background())
	h := d.health(context.Background())
	if h.StorageTotal == 0 || h.StorageFree > h.StorageTotal || h.Database <= 0 || h.MemTotal == 0 || h.MemChat == 0 ||
		h.BoxUp <= 0 || h.CertExpires.IsZero() || len(h.Problems) > 0 {
		t.Errorf("health %+v", h)
	}

	// No agent, no status file: not known; no feed configured.
	if u := d.updateStatus(context.Background()); u.Known || u.FeedURL != "" {
		t.Errorf("without an agent: %+v", u)
	}
	if err := d.updateCheck(context.Background()); err == nil {
		t.Error("check now without an agent succeeded")
	}
	// The status file the agent writes.
	os.MkdirAll(dir.Status(), 0o700)
	os.WriteFile(filepath.Join(dir.Status(), "update.json"), []byte(`{"version":"3","release":3,"state":"idle","message":"up to date (release 3)","last_check":"2026-12-01T03:00:00Z"}`), 0o644)
	if u := d.updateStatus(context.Background()); !u.Known || u.Running != "3" || u.Message != "up to date (release 3)" || u.LastCheck.IsZero() {
		t.Errorf("from the file: %+v", u)
	}
	// The agent's socket wins, and takes "check now".
	os.MkdirAll(dir.Update(), 0o700)
	ln, err := net.Listen("unix", filepath.Join(dir.Update(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	checks := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"version":"3","state":"idle","message":"release 4 ready; waiting for the update window 02:00-05:00","available":{"release":4},"last_result":"committed release 3"}`)
	})
	mux.HandleFunc("POST /check", func(w http.ResponseWriter, r *http.Request) { checks <- struct{}{}; w.WriteHeader(http.StatusAccepted) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	cfg, _ := config.Load(dir.Config())
	cfg.Update.FeedURL = "https://updates.example.org/stable/"
	config.Save(dir.Config(), cfg)
	if u := d.updateStatus(context.Background()); !u.Known || u.Offered != 4 || u.Result != "committed release 3" || u.FeedURL != cfg.Update.FeedURL {
		t.Errorf("from the socket: %+v", u)
	}
	if err := d.updateCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-checks:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent was not asked to check")
	}
}

// The countdown runs by itself: with a short tick and grace the removed
// account goes once the grace has run on the monotonic clock.
func TestRemovalCountdownRuns(t *testing.T) {
	old := removalTick
	removalTick = 20 * time.Millisecond
	defer func() { removalTick = old }()
	d := startTest(t, state.Dir(t.TempDir()))
	defer d.Shutdown(context.Background())
	d.Store.CreateAccount("bob", "bob-password", false)
	d.removals.grace = 300 * time.Millisecond
	start := time.Now()
	if err := (webMembers{d}).Remove("bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob deleted", func() bool { _, err := d.Store.Account("bob"); return err == store.ErrNotFound })
	if e := time.Since(start); e < 300*time.Millisecond {
		t.Fatalf("deleted after %v, before the grace ran out", e)
	}
}

// TestSignOutAllDevices: through the real store and router, "sign out all
// devices" lists the member's devices, ends their FAST tokens and every
// session — the connected one and the one hibernating for resumption
// (a stream error does nothing to a session without a connection).
func TestSignOutAllDevices(t *testing.T) {
	d := startTest(t, state.Dir(t.TempDir()))
	for _, u := range []string{"anna", "bob"} {
		if err := d.Store.CreateAccount(u, u+"-password", u == "anna"); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if err := d.Store.SeenDevice("bob", "ua-phone", "Conversations", "Pixel 7", now.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	token, _, err := d.Store.IssueFAST("bob", "ua-phone", sasl.HTSHA256None, now)
	if err != nil {
		t.Fatal(err)
	}
	w := webDevices{webMembers{d}}
	list, err := w.List("bob")
	if err != nil || len(list) != 1 || list[0].Software != "Conversations" || list[0].Device != "Pixel 7" || list[0].TokenExpiry.IsZero() {
		t.Fatalf("bob's devices %+v, %v", list, err)
	}
	if _, err := w.List("zed"); err != setupui.ErrNoMember {
		t.Errorf("devices of nobody: %v", err)
	}
	if _, err := w.SignOutAll("_health"); err != setupui.ErrNoMember {
		t.Errorf("sign out of the box's own account: %v", err)
	}

	hibernate(t, d, "bob")
	laptop := dial(t, d, "bob", "bob-password")
	waitFor(t, "bob's two sessions", func() bool { return len(d.Server.Router.Sessions("bob")) == 2 })

	n, err := w.SignOutAll("bob")
	if err != nil || n != 2 {
		t.Fatalf("sign out: %d sessions, %v", n, err)
	}
	laptop.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		b, err := laptop.ReadStanza()
		if err != nil {
			break
		}
		if bytes.Contains(b, []byte("not-authorized")) {
			break
		}
	}
	waitFor(t, "bob's sessions to end", func() bool { return len(d.Server.Router.Sessions("bob")) == 0 })
	if _, _, err := d.Store.UseFAST("bob", "ua-phone", sasl.HTSHA256None, sasl.HTInitiator([]byte(token)), time.Now()); err != store.ErrFASTRefused {
		t.Errorf("bob's FAST token after sign out: %v", err)
	}
	if list, _ := w.List("bob"); len(list) != 1 || !list[0].TokenExpiry.IsZero() {
		t.Errorf("after sign out bob's devices are %+v (want listed, without a token)", list)
	}
	// Signing out is not removal: the password still logs in.
	if err := login(t, d, "bob", "bob-password"); err != nil {
		t.Errorf("bob after sign out: %v", err)
	}
}

// hibernate logs user in (password user+"-password") through a proxy the
// test controls, enables resumption (XEP-0198) and cuts the connection:
// the session then waits, detached, for its client to resume.
func hibernate(t *testing.T, d *Daemon, user string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cut := make(chan net.Conn, 1)
	go func() {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", d.C2SAddr.String())
		if err != nil {
			in.Close()
			return
		}
		cut <- out
		go io.Copy(out, in)
		io.Copy(in, out)
		in.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	phone, err := client.Dial(ctx, client.Config{
		Addr: ln.Addr().String(), Domain: d.Server.Domain, User: user, Password: user + "-password",
		TLS:       &tls.Config{InsecureSkipVerify: true, ServerName: d.Server.Domain},
		Mechanism: client.ScramSHA256, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	if err := phone.Send([]byte("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")); err != nil {
		t.Fatal(err)
	}
	phone.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		b, err := phone.ReadStanza()
		if err != nil {
			t.Fatalf("waiting for <enabled/>: %v", err)
		}
		if bytes.Contains(b, []byte("<enabled")) {
			break
		}
	}
	(<-cut).Close()
	waitFor(t, user+"'s phone to hibernate", func() bool {
		all := d.Server.Router.Sessions(user)
		return len(all) == 1 && all[0].Detached()
	})
}

// TestRemoveEndsHibernatingSession: removing a member ends a session that
// waits for resumption too (a stream error reaches no connection, so it
// stayed in the router, listed as online and queueing, until its window
// ran out).
func TestRemoveEndsHibernatingSession(t *testing.T) {
	d := startTest(t, state.Dir(t.TempDir()))
	if err := d.Store.CreateAccount("dora", "dora-password", false); err != nil {
		t.Fatal(err)
	}
	hibernate(t, d, "dora")
	if err := (webMembers{d}).Remove("dora"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dora's hibernating session to end", func() bool { return len(d.Server.Router.Sessions("dora")) == 0 })
}
