package c2s_test

import (
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// What a phone pays to be back online (bound, stream management and
// carbons on) after its network changed: round trips after TCP, and time.
// Each flow is what a client does without pipelining across answers.

type loginFlow struct {
	name  string
	login func(t *testing.T, addr net.Addr) (trips int, took time.Duration)
}

// bye ends the stream cleanly and waits for the server to close, so the
// session is gone before the next login (a dropped link would leave it
// hibernating, and ten of them fill the account's resources).
func bye(c *xmpptest.Client) {
	c.Send("</stream:stream>")
	for {
		if _, err := c.Next(); err != nil {
			break
		}
	}
	c.Raw.Close()
}

func loginFlows(token func() string) []loginFlow {
	return []loginFlow{
		{"SASL1+bind+SM+carbons", func(t *testing.T, addr net.Addr) (int, time.Duration) {
			began := time.Now()
			c := xmpptest.Dial(t, addr, true) // TLS 1.3: 1 trip, made by the first write
			c.Open()
			if el := c.Auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
				t.Fatalf("auth: %s", el)
			}
			c.Open()
			c.Bind("")
			c.Send("<enable xmlns='" + nsSM + "' resume='true'/><iq type='set' id='cb'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
			c.El()
			c.El()
			took := time.Since(began)
			bye(c)
			return 1 + 1 + 2 + 1 + 1 + 1, took
		}},
		{"SASL2+Bind2(SM,carbons)", func(t *testing.T, addr net.Addr) (int, time.Duration) {
			began := time.Now()
			c := xmpptest.Dial(t, addr, true)
			c.Open()
			l := sasl2Scram(t, c, "alice", "alice-pw", phoneUA+"<bind xmlns='"+nsBind2+"'><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='"+nsSM+"' resume='true'/></bind>")
			if l.end.Local != "success" {
				t.Fatalf("sasl2: %s", l.end)
			}
			c.El() // features, in the same flight as <success/>
			took := time.Since(began)
			bye(c)
			return 1 + 1 + l.trips, took
		}},
		{"FAST+Bind2(SM,carbons)", func(t *testing.T, addr net.Addr) (int, time.Duration) {
			began := time.Now()
			c := xmpptest.Dial(t, addr, true)
			c.Open()
			s := sasl2Fast(t, c, "alice", token(), phoneUA+fastEl+"<bind xmlns='"+nsBind2+"'><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='"+nsSM+"' resume='true'/></bind>")
			if s.Local != "success" {
				t.Fatalf("fast: %s", s)
			}
			c.El()
			took := time.Since(began)
			bye(c)
			return 1 + 1 + 1, took
		}},
	}
}

// TestLoginRoundTrips checks the round trips of each flow and, with -v,
// prints their times on loopback and through a proxy that adds a mobile
// link's round trip (HEARTH_LOGIN_RTT_MS, default 100). Only the trip
// counts can fail: times depend on the machine.
func TestLoginRoundTrips(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	tok := sasl2Scram(t, c, "alice", "alice-pw", phoneUA+requestToken()).end.Child(nsFAST, "token").Get("token")
	c.Raw.Close()
	rtt := 100 * time.Millisecond
	if ms, err := strconv.Atoi(os.Getenv("HEARTH_LOGIN_RTT_MS")); err == nil {
		rtt = time.Duration(ms) * time.Millisecond
	}
	slow := delayProxy(t, d.C2STLSAddr, rtt/2)
	want := map[string]int{"SASL1+bind+SM+carbons": 7, "SASL2+Bind2(SM,carbons)": 4, "FAST+Bind2(SM,carbons)": 3}
	for _, f := range loginFlows(func() string { return tok }) {
		const n, m = 50, 3
		var trips int
		var local, far time.Duration
		for range n {
			tr, took := f.login(t, d.C2STLSAddr)
			trips, local = tr, local+took/n
		}
		for range m {
			_, took := f.login(t, slow)
			far += took / m
		}
		if trips != want[f.name] {
			t.Errorf("%s: %d round trips, want %d", f.name, trips, want[f.name])
		}
		t.Logf("%-24s %d round trips after TCP; loopback %6.2f ms/login; at %v RTT %6.0f ms/login",
			f.name, trips, float64(local.Microseconds())/1000, rtt, float64(far.Milliseconds()))
	}
}

// delayProxy forwards TCP connections to target, holding every chunk for
// oneWay in each direction (order kept).
func delayProxy(t *testing.T, target net.Addr, oneWay time.Duration) net.Addr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target.String())
			if err != nil {
				a.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); delayCopy(b, a, oneWay) }()
			go func() { defer wg.Done(); delayCopy(a, b, oneWay) }()
		}
	}()
	return ln.Addr()
}

func delayCopy(dst, src net.Conn, d time.Duration) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	ch := make(chan chunk, 256)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{time.Now().Add(d), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range ch {
	}
}
