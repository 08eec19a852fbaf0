package s2s_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cretz/bine/torutil"
	toredkey "github.com/cretz/bine/torutil/ed25519"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/s2s"
)

// newOnionName makes a well-formed v3 onion address (a fresh key's).
func newOnionName(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return torutil.OnionServiceIDFromV3PublicKey(toredkey.FromCryptoPublicKey(pub)) + ".onion"
}

// Federation with an onion domain through a SOCKS5 server standing in for
// tor: a.test reaches the onion box (and verifies its dialback key)
// through the SOCKS port only, hands the .onion name to it as a domain
// name, and never asks DNS; the onion box's inbound link arrives on its
// onion listener.
func TestOnionFederationThroughSOCKS(t *testing.T) {
	w := newWorld(t)
	var (
		dnsMu   sync.Mutex
		queries []string
	)
	w.dns.Log = func(format string, args ...any) {
		dnsMu.Lock()
		defer dnsMu.Unlock()
		queries = append(queries, args[0].(string))
	}
	onionName := newOnionName(t)
	onionSock := filepath.Join(t.TempDir(), "onion-s2s.sock")
	// tor would forward the service's port 5269 to the box's onion
	// socket; so does the test's SOCKS server, for exactly that name.
	socks := s2s.StartSOCKS(t, func(r s2s.SOCKSRequest) (net.Conn, error) {
		if r.AddrType != 3 || r.Host != onionName || r.Port != 5269 {
			t.Errorf("SOCKS request %+v, want domain name %s port 5269", r, onionName)
		}
		return net.Dial("unix", onionSock)
	})

	// a.test: every DNS lookup fails the test (it has nothing to look
	// up: its only peer is the onion box), and loopback targets are
	// refused as on the box: tor's SOCKS port is allowed anyway.
	aLog := &logBuf{t: t}
	a := &box{domain: "a.test", log: aLog}
	a.d = xmpptest.Start(t, func(o *xmppd.Options) {
		o.Domain = a.domain
		tls := o.State.TLS()
		w.ca.Issue(t, filepath.Join(tls, "cert.pem"), filepath.Join(tls, "key.pem"), "a.test", "groups.a.test", "upload.a.test")
		o.S2S = xmppd.S2SOptions{Listen: "127.0.0.1:0", CAFile: w.ca.PEMFile, TorSOCKS: socks.Addr,
			Tune: func(c *s2s.Config) {
				c.Log = slog.New(slog.NewTextHandler(aLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
				c.Resolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
					t.Errorf("a.test asked DNS")
					return nil, &net.DNSError{Err: "test: no DNS here", IsNotFound: true}
				}}
			}}
	})
	port := a.d.S2SAddr().(*net.TCPAddr).Port
	w.dns.Host(t, "xmpp.a.test", "127.0.0.1")
	for _, d := range []string{"a.test", "groups.a.test"} {
		w.dns.Replace(t, s2s.SRVRecord("xmpp-server", d, 0, 0, port, "xmpp.a.test"))
	}

	// The onion box: its certificate is from a CA a.test does not trust
	// (no CA issues one for a made-up onion name), so a.test
	// authenticates it by dialback, connecting back through tor.
	other := s2s.NewCA(t, t.TempDir())
	oLog := &logBuf{t: t}
	b := &box{domain: onionName, log: oLog}
	b.d = xmpptest.Start(t, func(o *xmppd.Options) {
		o.Domain = onionName
		tls := o.State.TLS()
		other.Issue(t, filepath.Join(tls, "cert.pem"), filepath.Join(tls, "key.pem"), onionName, "groups."+onionName, "upload."+onionName)
		o.S2S = xmppd.S2SOptions{Out: true, Onion: "unix:" + onionSock, Resolver: w.dns.Addr, CAFile: w.ca.PEMFile, AllowLocal: true,
			Tune: func(c *s2s.Config) {
				c.Log = slog.New(slog.NewTextHandler(oLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}}
	})

	exchange(t, a, b)

	reqs := socks.Requests()
	if len(reqs) < 2 {
		t.Errorf("SOCKS requests %+v: want a.test's link and its dialback connect-back", reqs)
	}
	if !aLog.has("auth=dialback") {
		t.Error("a.test's links to the onion box not authenticated by dialback")
	}
	// With XEP-0288 the onion box answers on a.test's streams and looks
	// nothing up itself: the log's own check is a lookup of ours.
	s2s.Resolver(w.dns.Addr).LookupHost(context.Background(), "xmpp.a.test")
	dnsMu.Lock()
	defer dnsMu.Unlock()
	for _, q := range queries {
		if strings.Contains(strings.ToLower(q), "onion") {
			t.Errorf("DNS was asked %q", q)
		}
	}
	if len(queries) == 0 {
		t.Error("the onion box asked DNS nothing: the test's DNS log does not work")
	}
}

// Inbound connections from the onion listener are one bucket with a cap
// of their own (Onion.MaxUnauth), apart from every address's
// (MaxUnauthPerIP): tor connects from the box itself.
func TestOnionInboundBucket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "onion-s2s.sock")
	d := xmpptest.Start(t, func(o *xmppd.Options) {
		o.S2S = xmppd.S2SOptions{Listen: "127.0.0.1:0", Onion: "unix:" + sock,
			Tune: func(c *s2s.Config) { c.MaxUnauthPerIP, c.Onion.MaxUnauth = 2, 4 }}
	})
	onionAddr := &net.UnixAddr{Name: sock, Net: "unix"}
	peer := func(addr net.Addr) *peer {
		p := &peer{Client: xmpptest.Dial(t, addr, false)}
		p.open("x.test", d.Server.Domain)
		return p
	}
	refused := func(addr net.Addr) bool {
		c, err := net.Dial(addr.Network(), addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='" + d.Server.Domain + "' version='1.0'>"))
		n, _ := c.Read(make([]byte, 1)) // closed at once: EOF; admitted: its header
		return n == 0
	}
	for range 2 {
		peer(d.S2SAddr()) // 127.0.0.1's bucket is full
	}
	if !refused(d.S2SAddr()) {
		t.Fatal("a third unauthenticated connection from 127.0.0.1 was admitted")
	}
	// Four onion connections while 127.0.0.1 is full: each answers (a
	// refused one would end before its stream header).
	for range 4 {
		peer(onionAddr)
	}
	if !refused(onionAddr) {
		t.Fatal("a fifth unauthenticated onion connection was admitted")
	}
}
