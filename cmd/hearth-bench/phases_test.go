package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// fakeConn is an xconn whose "server" answers each stanza the session
// sends with answer(stanza). ReadStanza hands out one buffer that it
// overwrites on the next call, as client.Conn does, so a callback that
// keeps a stanza without copying it sees the next one instead.
//
// Send returns only once the reader has taken every answer and waits for
// more (idle), so the reader is done with the answers before the code
// under test looks at what it was handed.
type fakeConn struct {
	answer func(sent string) []string
	in     chan string
	idle   chan struct{}
	buf    []byte
	once   sync.Once
	sent   []string
	mu     sync.Mutex
}

func newFakeConn(answer func(string) []string) *fakeConn {
	return &fakeConn{answer: answer, in: make(chan string, 64), idle: make(chan struct{}, 1), buf: make([]byte, 0, 64<<10)}
}

// start makes a session on f and waits until its reader waits for input.
func (f *fakeConn) start(t *testing.T) *session {
	s := newSession(f)
	select {
	case <-f.idle:
	case <-time.After(5 * time.Second):
		t.Fatal("the session's reader never asked for a stanza")
	}
	return s
}

func (f *fakeConn) JID() string       { return "b1@bench.localhost/idle" }
func (f *fakeConn) Mechanism() string { return "SCRAM-SHA-256" }
func (f *fakeConn) Send(b []byte) error {
	f.mu.Lock()
	f.sent = append(f.sent, string(b))
	f.mu.Unlock()
	as := f.answer(string(b))
	for _, a := range as {
		f.in <- a
	}
	if len(as) > 0 {
		select {
		case <-f.idle:
		case <-time.After(5 * time.Second):
		}
	}
	return nil
}
func (f *fakeConn) ReadStanza() ([]byte, error) {
	var s string
	var ok bool
	select {
	case s, ok = <-f.in:
	default:
		select {
		case f.idle <- struct{}{}:
		default:
		}
		s, ok = <-f.in
	}
	if !ok {
		return nil, io.EOF
	}
	f.buf = append(f.buf[:0], s...)
	return f.buf, nil
}
func (f *fakeConn) Close() error { f.once.Do(func() { close(f.in) }); return nil }

var idAttr = regexp.MustCompile(`id='([^']*)'`)

// TestIQKeepsItsAnswer: the answer to an iq is followed at once by other
// stanzas; iq must return the answer, not whatever the reader's buffer
// held by the time it looked (the first prosody run configured a room
// and read a room message as the answer).
func TestIQKeepsItsAnswer(t *testing.T) {
	c := newFakeConn(func(sent string) []string {
		id := idAttr.FindStringSubmatch(sent)[1]
		return []string{
			"<iq type='result' id='" + id + "' from='room@groups.bench.localhost'/>",
			"<message from='room@groups.bench.localhost' type='groupchat'><body>" + strings.Repeat("x", 200) + "</body></message>",
			"<presence from='room@groups.bench.localhost/o1'/>",
		}
	})
	s := c.start(t)
	defer s.close()
	el, err := s.iq("set", "room@groups.bench.localhost", "<query xmlns='"+nsMUCOwner+"'/>", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if el.Local != "iq" || el.Get("type") != "result" {
		t.Fatalf("got %s, want the iq result", el)
	}
}

func TestIQError(t *testing.T) {
	c := newFakeConn(func(sent string) []string {
		id := idAttr.FindStringSubmatch(sent)[1]
		return []string{"<iq type='error' id='" + id + "'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Access denied by service policy</text></error></iq>"}
	})
	s := c.start(t)
	defer s.close()
	_, err := s.iq("get", "upload.bench.localhost", "<request/>", 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "forbidden (Access denied by service policy)") {
		t.Fatalf("err = %v, want the condition and text", err)
	}
}

func TestIQTimesOut(t *testing.T) {
	c := newFakeConn(func(string) []string { return nil })
	s := c.start(t)
	defer s.close()
	if _, err := s.iq("get", "x", "", 50*time.Millisecond); err == nil {
		t.Fatal("no error without an answer")
	}
}

func parse(t *testing.T, s string) *stream.Element {
	t.Helper()
	el, err := stream.ParseElement([]byte(s))
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return el
}

func TestParseSlot(t *testing.T) {
	// Prosody's mod_http_file_share answers with an Authorization header
	// (and the XEP allows Cookie and Expires); anything else is dropped,
	// and so are line breaks (header injection).
	el := parse(t, `<iq type="result" id="q1"><slot xmlns="urn:xmpp:http:upload:0">`+
		`<put url="http://upload.bench.localhost:5280/file_share/abc/bench.bin">`+
		`<header name="Authorization">Bearer tok&#10;en</header><header name="X-Evil">1</header><header name="cookie">c=1</header></put>`+
		`<get url="http://upload.bench.localhost:5280/file_share/abc/bench.bin"/></slot></iq>`)
	s, err := parseSlot(el)
	if err != nil {
		t.Fatal(err)
	}
	if s.put != "http://upload.bench.localhost:5280/file_share/abc/bench.bin" || s.get != s.put {
		t.Errorf("urls %q %q", s.put, s.get)
	}
	if len(s.headers) != 2 || s.headers["Authorization"] != "Bearer token" || s.headers["Cookie"] != "c=1" {
		t.Errorf("headers %q", s.headers)
	}
	for _, bad := range []string{
		`<iq type='result' id='q1'/>`,
		`<iq type='result' id='q1'><slot xmlns='urn:xmpp:http:upload:0'><put url='http://a/x'/></slot></iq>`,
		`<iq type='result' id='q1'><slot xmlns='urn:xmpp:http:upload:0'><put url='file:///etc/passwd'/><get url='http://a/x'/></slot></iq>`,
		`<iq type='result' id='q1'><slot xmlns='urn:xmpp:http:upload:5'><put url='http://a/x'/><get url='http://a/x'/></slot></iq>`,
	} {
		if _, err := parseSlot(parse(t, bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestSamplePeak(t *testing.T) {
	vals := []int64{100, 0, 180, 120, 0, 150}
	var mu sync.Mutex
	i := 0
	stop := make(chan struct{})
	read := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		if i >= len(vals) {
			select {
			case <-stop:
			default:
				close(stop)
			}
			return 0
		}
		v := vals[i]
		i++
		return v
	}
	peak, n := samplePeak(read, time.Millisecond, stop)
	if peak != 180 || n != 4 {
		t.Errorf("peak %d from %d samples, want 180 from 4 (zeros are not samples)", peak, n)
	}
}

// TestUpload runs the upload against a fake slot service and a web
// server on loopback whose slot URL names a host nothing resolves (as
// every server's does here): the bytes are PUT and compared when they
// come back, and a server that returns other bytes is caught.
func TestUpload(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		var mu sync.Mutex
		var stored []byte
		var auth, host string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			switch r.Method {
			case "PUT":
				auth, host = r.Header.Get("Authorization"), r.Host
				stored, _ = io.ReadAll(r.Body)
				w.WriteHeader(http.StatusCreated)
			case "GET":
				b := stored
				if corrupt {
					b = append(bytes.Clone(b[:len(b)-1]), b[len(b)-1]^1)
				}
				w.Write(b)
			}
		}))
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		u := "http://upload.bench.invalid:" + port + "/u/tok/bench.bin"
		var req string
		c := newFakeConn(func(sent string) []string {
			req = sent
			id := idAttr.FindStringSubmatch(sent)[1]
			return []string{"<iq type='result' id='" + id + "'><slot xmlns='urn:xmpp:http:upload:0'><put url='" + u +
				"'><header name='Authorization'>Bearer t</header></put><get url='" + u + "'/></slot></iq>"}
		})
		s := c.start(t)
		const size = 300_001
		x, err := upload(os.Getpid(), s, "upload.bench.invalid", size, 20*time.Second)
		s.close()
		srv.Close()
		if !strings.Contains(req, "size='300001'") || !strings.Contains(req, "to='upload.bench.invalid'") {
			t.Errorf("slot request %s", req)
		}
		if corrupt {
			if err == nil || x.identical {
				t.Errorf("a changed byte went unnoticed: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(stored)
		got := sha256.New()
		io.Copy(got, benchFile(size))
		if len(stored) != size || !bytes.Equal(got.Sum(nil), want[:]) || !x.identical {
			t.Errorf("stored %d bytes, identical %v", len(stored), x.identical)
		}
		if auth != "Bearer t" || host != "upload.bench.invalid:"+port {
			t.Errorf("PUT had Authorization %q, Host %q", auth, host)
		}
		if x.put <= 0 || x.get <= 0 || x.status != http.StatusCreated {
			t.Errorf("result %+v", x)
		}
	}
}

func TestGroupchatStamp(t *testing.T) {
	b := appendGroupchat(nil, "r@groups.d", 42, 1700000000123456789, "sat")
	// What a room sends on: other attributes, double quotes, extra
	// children (Prosody and ejabberd add stanza-id, occupant-id, …).
	in := strings.Replace(string(b), "<message ", `<message from="r@groups.d/o3" xmlns:foo="x" `, 1)
	in = strings.Replace(in, "<body>", `<stanza-id xmlns="urn:xmpp:sid:0" id="abc" by="r@groups.d"/><body>`, 1)
	ts, k, tag, ok := groupchatStamp([]byte(in))
	if !ok || ts != 1700000000123456789 || k != 42 || tag != "sat" {
		t.Fatalf("got %d %d %q %v from %s", ts, k, tag, ok, in)
	}
	for _, bad := range []string{
		"<message><body>hello</body></message>",
		"<message><body>1 2</body></message>",
		"<message><body>1 -2 sat x</body></message>",
		"<message><subject/></message>",
	} {
		if _, _, _, ok := groupchatStamp([]byte(bad)); ok {
			t.Errorf("%s: read a stamp", bad)
		}
	}
}

func TestFanoutCompletesOnLastReceipt(t *testing.T) {
	f := newFanout(3, 10, "sat")
	now := time.Now().UnixNano()
	msg := func(k int64, tag string) []byte { return appendGroupchat(nil, "r", k, now, tag) }
	f.receive(msg(1, "sat"))
	f.receive(msg(1, "sat"))
	f.receive(msg(1, "rate")) // another run's
	f.receive(msg(11, "sat")) // out of range
	f.receive([]byte(strings.Replace(string(msg(1, "sat")), "<message ", "<message type='error' ", 1)))
	if f.complete.Load() != 0 || len(f.latencies(0)) != 0 {
		t.Fatal("complete before the third receipt")
	}
	f.receive(msg(1, "sat"))
	if f.complete.Load() != 1 || f.receipts.Load() != 3 {
		t.Fatalf("complete %d, receipts %d", f.complete.Load(), f.receipts.Load())
	}
	select {
	case k := <-f.done:
		if k != 1 {
			t.Errorf("done %d", k)
		}
	default:
		t.Error("no token back for the completed message")
	}
	if l := f.latencies(0); len(l) != 1 || l[0] < 0 {
		t.Errorf("latencies %v", l)
	}
	if len(f.latencies(2)) != 0 {
		t.Error("latencies from message 2 on include message 1")
	}
}

func TestPercentileAndMedian(t *testing.T) {
	var v []int64
	for i := int64(1); i <= 100; i++ {
		v = append(v, i)
	}
	if p := percentile(v, 0.5); p != 50 {
		t.Errorf("p50 %d", p)
	}
	if p := percentile(v, 0.99); p != 99 {
		t.Errorf("p99 %d", p)
	}
	if p := percentile(nil, 0.99); p != 0 {
		t.Errorf("empty %d", p)
	}
	if m := median([]time.Duration{5, 1, 3}); m != 3 {
		t.Errorf("median %d", m)
	}
	if m := median([]time.Duration{4, 1}); m != 1 {
		t.Errorf("median of two %d (the lower)", m)
	}
}

func TestIsSelfPresence(t *testing.T) {
	room := "bench-archive@groups.d"
	for _, c := range []struct {
		in         string
		self, gone bool
	}{
		{`<presence from='bench-archive@groups.d/newcomer'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='100'/><status code='110'/></x></presence>`, true, false},
		{`<presence from='bench-archive@groups.d/newcomer' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></presence>`, true, true},
		{`<presence from='bench-archive@groups.d/owner'><x xmlns='http://jabber.org/protocol/muc#user'><status code='100'/></x></presence>`, false, false},
		{`<presence from='bench-archive@groups.dx/newcomer'><x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></presence>`, false, false},
		{`<presence from='bench-archive@groups.d/newcomer'><x xmlns='http://jabber.org/protocol/muc'><status code='110'/></x></presence>`, false, false},
	} {
		self, gone := isSelfPresence(parse(t, c.in), room)
		if self != c.self || gone != c.gone {
			t.Errorf("%s: self %v gone %v", c.in, self, gone)
		}
	}
}

func TestDiscoFeaturesAndRoomForm(t *testing.T) {
	el := parse(t, `<iq type='result'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='conference' type='text'/>`+
		`<feature var='urn:xmpp:mam:2'/><feature var='muc_persistent'/><x xmlns='jabber:x:data'/></query></iq>`)
	if got := fmt.Sprint(discoFeatures(el)); got != "[muc_persistent urn:xmpp:mam:2]" {
		t.Errorf("features %s", got)
	}
	has := func(f [][2]string, k string) bool {
		for _, x := range f {
			if x[0] == k {
				return true
			}
		}
		return false
	}
	for _, s := range []string{"hearth", "prosody", "ejabberd"} {
		f := roomForm(s)
		if !has(f, "muc#roomconfig_persistentroom") || !has(f, "muc#roomconfig_whois") {
			t.Errorf("%s: form %v lacks the standard fields", s, f)
		}
		if has(f, "muc#roomconfig_enablearchiving") != (s == "prosody") {
			t.Errorf("%s: form %v: only prosody's mod_muc_mam has its own archiving field", s, f)
		}
	}
}

// TestCapsVer: XEP-0115 §5.2's worked example.
func TestCapsVer(t *testing.T) {
	got := capsVer("client/pc//Exodus 0.9.1", []string{"http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#items"})
	if got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Errorf("ver %s", got)
	}
}

// TestDiscoAnswerMatchesVer: what a subscriber answers the server's
// disco#info query with hashes to the ver it announced (a server that
// checks the hash would otherwise never learn +notify).
func TestDiscoAnswerMatchesVer(t *testing.T) {
	q := parse(t, "<iq type='get' id='c&amp;1' from='bench.localhost'><query xmlns='"+nsDiscoInfo+"' node='"+capsNode+"#x'/></iq>")
	a := parse(t, discoAnswer(q))
	if a.Get("id") != "c&1" || a.Get("to") != "bench.localhost" || a.Get("type") != "result" {
		t.Fatalf("answer %s", a)
	}
	query := a.FirstChild()
	if query.Get("node") != capsNode+"#x" {
		t.Errorf("node %q", query.Get("node"))
	}
	var ident string
	var feats []string
	for _, c := range query.Children() {
		switch c.Local {
		case "identity":
			ident = c.Get("category") + "/" + c.Get("type") + "/" + c.Get("xml:lang") + "/" + c.Get("name")
		case "feature":
			feats = append(feats, c.Get("var"))
		}
	}
	if capsVer(ident, feats) != capsVer(pepIdentity, pepFeatures) || !strings.Contains(strings.Join(feats, " "), pepNode+"+notify") {
		t.Errorf("answer %s does not hash to the announced ver", a)
	}
}

func TestPEPItemID(t *testing.T) {
	ev := func(node, id string) *stream.Element {
		return parse(t, "<message from='b52@d'><event xmlns='"+nsPubSubEvent+"'><items node='"+node+"'><item id='"+id+"'><entry xmlns='"+pepNode+"'/></item></items></event></message>")
	}
	if tag, k, ok := pepItemID(ev(pepNode, "m-17")); !ok || tag != "m" || k != 17 {
		t.Errorf("got %q %d %v", tag, k, ok)
	}
	for _, el := range []*stream.Element{ev("urn:xmpp:avatar:metadata", "m-1"), ev(pepNode, "m17"), ev(pepNode, "m--1"),
		parse(t, "<message><body>m-1</body></message>")} {
		if _, _, ok := pepItemID(el); ok {
			t.Errorf("%s: read an item", el)
		}
	}
}

// TestSkippedPhasesAreNotJudged: a run of only the new phases (-skip
// idle,ws,sat,rates,logins,offline) printed "met (0.0 KiB)" and NaN for
// the skipped ones; only the targets of phases that ran are judged.
func TestSkippedPhasesAreNotJudged(t *testing.T) {
	o := &options{nSmall: 200, nLarge: 300, uploadSize: 4 << 20, idleWindow: time.Minute,
		muc: mucOptions{occupants: 10, rate: 10, archive: 100, history: 20, mamMax: 50}, pep: pepOptions{subscribers: 10, items: 5}}
	h := &result{name: "hearth", rssN: map[int]int64{}, perSess: map[int]float64{}, loginN: map[int]time.Duration{}}
	h.up = uploadResult{size: 4 << 20, put: time.Second, get: time.Second, status: 201, identical: true, rssBefore: 20000, rssPeak: 20100}
	h.muc = mucResult{occupants: 10, joinAll: time.Millisecond,
		idle: idleOccResult{n: 100, rooms: 4, perRoom: 25, anonRest: 900, anonSess: 1000, anonOcc: 1150, joinAll: time.Millisecond}}
	p := &result{name: "prosody", rssN: map[int]int64{}, perSess: map[int]float64{}, loginN: map[int]time.Duration{}}
	md := report(o, []*result{h, p})
	for _, bad := range []string{"RSS per idle session (N=300) ≤", "≤ 0.4× Prosody's", "messages per CPU-second at saturation ≥", "no failures in the fixed-rate runs", "zero wake-ups", "NaN"} {
		if strings.Contains(md, bad) {
			t.Errorf("report judges a skipped phase (%q):\n%s", bad, md)
		}
	}
	for _, want := range []string{"memory stays flat during a 4 MiB upload", "RSS per idle occupant under 2 KiB beyond the session's own: **met**"} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in\n%s", want, md)
		}
	}
}
