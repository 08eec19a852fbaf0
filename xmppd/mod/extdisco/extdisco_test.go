package extdisco_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	pion "github.com/pion/turn/v4"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "urn:xmpp:extdisco:2"

func withTURN(o *xmppd.Options) {
	// 20 relay ports: coturn's uclient asks for EVEN-PORT, so only the
	// even half serves it, and the refused-peer runs leave their
	// allocations behind (uclient exits without deallocating) until
	// they expire, as a crashed phone's would. With 10 ports the flood
	// test ran out of even ports for bob (508) under -race.
	first := 20000 + rand.IntN(30000)
	o.TURN = xmppd.TURNOptions{Listen: "127.0.0.1:0", Host: "127.0.0.1", RelayIP: "127.0.0.1",
		RelayFirst: first, RelayLast: first + 19,
		AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
}

func TestServices(t *testing.T) {
	d := xmpptest.Start(t, withTURN)
	c := iqtest.Login(t, d, "alice", "r")
	if d.TURN == nil {
		t.Fatal("TURN did not start")
	}
	port := strconv.Itoa(d.TURN.Port())

	res := c.Result("get", iqtest.Domain, "<services xmlns='"+ns+"'/>")
	var got []string
	var turnUDP *stream.Element
	for _, s := range res.Children() {
		got = append(got, s.Get("type")+"/"+s.Get("transport")+" "+s.Get("host")+":"+s.Get("port"))
		if s.Get("type") == "turn" && s.Get("transport") == "udp" {
			turnUDP = s
		}
		if s.Get("type") == "stun" && s.Has("password") {
			t.Errorf("STUN service carries a credential: %s", s)
		}
	}
	want := []string{"stun/udp 127.0.0.1:" + port, "turn/udp 127.0.0.1:" + port, "turn/tcp 127.0.0.1:" + port}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("services %v, want %v", got, want)
	}
	user, pass := turnUDP.Get("username"), turnUDP.Get("password")
	if !strings.HasSuffix(user, ":alice") || pass == "" || turnUDP.Get("restricted") != "1" {
		t.Fatalf("turn service %s", turnUDP)
	}
	exp, err := time.Parse(time.RFC3339, turnUDP.Get("expires"))
	if err != nil || exp.Before(time.Now()) || exp.After(time.Now().Add(48*time.Hour)) {
		t.Fatalf("expires %q: %v", turnUDP.Get("expires"), err)
	}
	if e := strings.SplitN(user, ":", 2)[0]; e != strconv.FormatInt(exp.Unix(), 10) {
		t.Errorf("username expiry %s differs from expires %s", e, turnUDP.Get("expires"))
	}

	// The credential works on the box's TURN server: an allocation.
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	addr := "127.0.0.1:" + port
	tc, err := pion.NewClient(&pion.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: user, Password: pass, Realm: iqtest.Domain})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := tc.Allocate()
	if err != nil {
		t.Fatalf("allocate with the XEP-0215 credential: %v", err)
	}
	relay.Close()

	// type narrows the list.
	res = c.Result("get", iqtest.Domain, "<services xmlns='"+ns+"' type='stun'/>")
	if n := len(res.Children()); n != 1 || res.FirstChild().Get("type") != "stun" {
		t.Errorf("type=stun: %s", res)
	}
	// credentials for one service.
	res = c.Result("get", iqtest.Domain, "<credentials xmlns='"+ns+"'><service host='127.0.0.1' type='turn' transport='tcp'/></credentials>")
	if s := res.FirstChild(); res.Local != "credentials" || s == nil || s.Get("transport") != "tcp" || !strings.HasSuffix(s.Get("username"), ":alice") {
		t.Errorf("credentials: %s", res)
	}
	for _, tc := range []struct{ name, payload, cond string }{
		{"credentials for an unknown host", "<credentials xmlns='" + ns + "'><service host='turn.example.org' type='turn'/></credentials>", "item-not-found"},
		{"credentials for STUN (none needed)", "<credentials xmlns='" + ns + "'><service host='127.0.0.1' type='stun'/></credentials>", "item-not-found"},
		{"credentials without a service", "<credentials xmlns='" + ns + "'/>", "bad-request"},
		{"services by set", "<services xmlns='" + ns + "'/>", "service-unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := "get"
			if strings.HasPrefix(tc.name, "services by set") {
				typ = "set"
			}
			if got := iqtest.Cond(c.IQ(typ, iqtest.Domain, tc.payload)); got != tc.cond {
				t.Errorf("condition %q, want %q", got, tc.cond)
			}
		})
	}
	// Each member gets a credential of their own.
	b := iqtest.Login(t, d, "bob", "r")
	res = b.Result("get", iqtest.Domain, "<services xmlns='"+ns+"' type='turn'/>")
	if u := res.FirstChild().Get("username"); !strings.HasSuffix(u, ":bob") {
		t.Errorf("bob's username %q", u)
	}
}

// TestRemoteForbidden: an iq from another server (no local session) gets
// forbidden and no credential; the answer is captured where it would
// leave for s2s.
func TestRemoteForbidden(t *testing.T) {
	d := xmpptest.Start(t, withTURN)
	answers := make(chan *stream.Element, 4)
	d.Server.Hook(server.StanzaRemote, 1000, func(st *server.Stanza) bool {
		answers <- st.El
		return true
	})
	for i, from := range []string{"mallory@evil.example/r", "evil.example", "alice@" + iqtest.Domain + ".evil.example/r"} {
		d.Server.Route(stream.New(stream.NSClient, "iq", "type", "get", "id", fmt.Sprint("x", i), "from", from, "to", iqtest.Domain).
			Add(stream.New(ns, "services")))
		select {
		case a := <-answers:
			if iqtest.Cond(a) != "forbidden" || strings.Contains(a.String(), "password") {
				t.Errorf("from %s: %s", from, a)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("from %s: no answer", from)
		}
	}
}

// TestDisabled: with the config's turn section off there is no server and
// the list is empty, but the iq is still answered.
func TestDisabled(t *testing.T) {
	d := xmpptest.Start(t, func(o *xmppd.Options) {
		withTURN(o)
		if err := o.State.Ensure(); err != nil {
			t.Fatal(err)
		}
		cfg := config.Default()
		cfg.Domain = iqtest.Domain
		cfg.TURN.Enabled = false
		if err := config.Save(o.State.Config(), cfg); err != nil {
			t.Fatal(err)
		}
	})
	if d.TURN != nil {
		t.Fatal("TURN started although turned off")
	}
	c := iqtest.Login(t, d, "alice", "r")
	if res := c.Result("get", iqtest.Domain, "<services xmlns='"+ns+"'/>"); len(res.Children()) != 0 {
		t.Errorf("services while off: %s", res)
	}
}
