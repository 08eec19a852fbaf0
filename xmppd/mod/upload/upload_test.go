package upload

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// fixture is a server with accounts alice and bob, the upload service on
// a clock the test moves, and its HTTP side on a loopback httptest
// server.
type fixture struct {
	t   *testing.T
	srv *server.Server
	u   *Uploads
	o   Options
	ts  *httptest.Server

	mu   sync.Mutex
	now  time.Time
	free int64
}

func newFixture(t *testing.T, tune func(*Options)) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := server.New("example.test", st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, srv: srv, now: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), free: 1 << 40}
	var h http.Handler = http.NotFoundHandler()
	var hmu sync.Mutex
	f.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hmu.Lock()
		x := h
		hmu.Unlock()
		x.ServeHTTP(w, r)
	}))
	t.Cleanup(f.ts.Close)
	f.o = Options{
		Dir:       filepath.Join(t.TempDir(), "uploads"),
		BaseURL:   func() string { return f.ts.URL },
		Now:       f.clock,
		FreeSpace: func() (int64, error) { f.mu.Lock(); defer f.mu.Unlock(); return f.free, nil },
	}
	if tune != nil {
		tune(&f.o)
	}
	f.u, err = Register(srv, f.o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.u.Close)
	hmu.Lock()
	h = f.u.Handler()
	hmu.Unlock()
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// request asks for a slot as from ("alice" for a local account, or a full
// JID) and returns the slot or the error.
func (f *fixture) request(from, name string, size int64, typ string) (*stream.Element, error) {
	if !strings.Contains(from, "@") {
		from += "@example.test/phone"
	}
	req := stream.New(NS, "request", "filename", name, "size", strconv.FormatInt(size, 10))
	if typ != "" {
		req.Set("content-type", typ)
	}
	iq := stream.New(stream.NSClient, "iq", "type", "get", "id", "1", "to", "upload.example.test").Add(req)
	return f.u.slotIQ(&server.Stanza{El: iq, From: jid.MustParse(from), To: jid.MustParse("upload.example.test")})
}

// slot returns a slot's PUT URL, failing the test on an error.
func (f *fixture) slot(user, name string, size int64, typ string) string {
	f.t.Helper()
	s, err := f.request(user, name, size, typ)
	if err != nil {
		f.t.Fatalf("slot %s %d: %v", name, size, err)
	}
	put, get := s.Child(NS, "put").Get("url"), s.Child(NS, "get").Get("url")
	if put == "" || put != get {
		f.t.Fatalf("slot %s", s)
	}
	return put
}

func (f *fixture) put(url string, body []byte, typ string) *http.Response {
	f.t.Helper()
	req, _ := http.NewRequest("PUT", url, bytes.NewReader(body))
	if typ != "" {
		req.Header.Set("Content-Type", typ)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("PUT: %v", err)
	}
	resp.Body.Close()
	return resp
}

func (f *fixture) get(url string, hdr ...string) (*http.Response, []byte) {
	f.t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// files lists what is in the upload directory.
func (f *fixture) files() []string {
	f.t.Helper()
	ents, err := os.ReadDir(f.o.Dir)
	if err != nil {
		f.t.Fatal(err)
	}
	var l []string
	for _, e := range ents {
		l = append(l, e.Name())
	}
	return l
}

func (f *fixture) usage(user string) store.Usage {
	f.t.Helper()
	u, err := f.srv.Store.Usage(user)
	if err != nil {
		f.t.Fatal(err)
	}
	return u[Kind]
}

func cond(err error) string {
	var se *server.StanzaError
	if errors.As(err, &se) {
		return se.Type + "/" + se.Condition
	}
	return fmt.Sprint(err)
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, nil)
	data := random(100_000)
	url := f.slot("alice", "holiday photo.png", int64(len(data)), "image/png")
	if !strings.HasPrefix(url, f.ts.URL+Prefix) || !strings.HasSuffix(url, "/holiday_photo.png") {
		t.Fatalf("URL %s", url)
	}
	if u := f.usage("alice"); u.Bytes != int64(len(data)) || u.Items != 1 {
		t.Errorf("slot not charged: %+v", u)
	}
	// Not served before it is uploaded.
	if resp, _ := f.get(url); resp.StatusCode != 404 {
		t.Errorf("GET before PUT: %d", resp.StatusCode)
	}
	if resp := f.put(url, data, "image/png"); resp.StatusCode != 201 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	resp, got := f.get(url)
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("GET: %d, %d bytes, equal %v", resp.StatusCode, len(got), bytes.Equal(got, data))
	}
	h := resp.Header
	for k, want := range map[string]string{
		"Content-Type":                "image/png",
		"X-Content-Type-Options":      "nosniff",
		"Content-Security-Policy":     CSP,
		"Access-Control-Allow-Origin": "*",
		"Content-Disposition":         `inline; filename=holiday_photo.png`,
	} {
		if h.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, h.Get(k), want)
		}
	}
	etag := h.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	// Range and conditional requests (http.ServeContent).
	resp, part := f.get(url, "Range", "bytes=10-19")
	if resp.StatusCode != 206 || !bytes.Equal(part, data[10:20]) {
		t.Errorf("Range: %d %x", resp.StatusCode, part)
	}
	if resp, _ := f.get(url, "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	// The token is spent: a second PUT changes nothing.
	if resp := f.put(url, random(len(data)), "image/png"); resp.StatusCode != 409 {
		t.Errorf("second PUT: %d, want 409", resp.StatusCode)
	}
	if _, again := f.get(url); !bytes.Equal(again, data) {
		t.Error("the file changed after a second PUT")
	}
	// One file, under a random name, nothing else.
	if l := f.files(); len(l) != 1 || !validFile(l[0]) {
		t.Errorf("upload dir: %v", l)
	}
	if res, stored := f.u.Totals(); res != int64(len(data)) || stored != int64(len(data)) {
		t.Errorf("totals %d %d", res, stored)
	}
}

func TestDisco(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxFileSize = 12345 })
	q := f.srv.Service("upload.example.test").Info(jid.MustParse("alice@example.test"))
	s := q.String()
	for _, want := range []string{
		"category='store' type='file'", "var='" + NS + "'",
		"<value>" + NS + "</value>", "var='max-file-size'", "<value>12345</value>",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("disco#info lacks %q: %s", want, s)
		}
	}
	if it := f.srv.DiscoItems(); len(it) != 1 || it[0].JID != "upload.example.test" {
		t.Errorf("disco#items: %v", it)
	}
}

func TestSlotRefusals(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxFileSize = 1000 })
	_, err := f.request("alice", "big.bin", 1001, "")
	var se *server.StanzaError
	if !errors.As(err, &se) || se.Condition != "not-acceptable" || se.Extra == nil ||
		se.Extra.ChildText(NS, "max-file-size") != "1000" {
		t.Errorf("too large: %v %+v", err, se)
	}
	for _, c := range []struct {
		from, name, size, want string
	}{
		{"alice@example.test/r", "", "10", "modify/bad-request"},
		{"alice@example.test/r", "x", "", "modify/bad-request"},
		{"alice@example.test/r", "x", "-1", "modify/bad-request"},
		{"alice@example.test/r", "x", "ten", "modify/bad-request"},
		{"mallory@elsewhere.test/x", "x", "10", "cancel/not-allowed"},
		{"example.test", "x", "10", "cancel/not-allowed"},
	} {
		req := stream.New(NS, "request", "filename", c.name, "size", c.size)
		iq := stream.New(stream.NSClient, "iq", "type", "get", "id", "1").Add(req)
		_, err := f.u.slotIQ(&server.Stanza{El: iq, From: jid.MustParse(c.from)})
		if cond(err) != c.want {
			t.Errorf("%+v: %v, want %s", c, cond(err), c.want)
		}
	}
	if u := f.usage("alice"); u != (store.Usage{}) {
		t.Errorf("refused slots charged %+v", u)
	}
}

// TestSlotFlood: 1,000 slot requests in a minute. After the per-minute
// rate the member gets policy-violation, others are unaffected, and the
// slots never used are gone (their bytes given back) once their time ran
// out.
func TestSlotFlood(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxPending = 10_000 })
	ok, limited := 0, 0
	for range 1000 {
		_, err := f.request("alice", "a.jpg", 1000, "image/jpeg")
		switch cond(err) {
		case "<nil>":
			ok++
		case "wait/policy-violation":
			limited++
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if ok != DefaultSlotRate || limited != 1000-DefaultSlotRate {
		t.Errorf("%d slots, %d refused; want %d and the rest", ok, limited, DefaultSlotRate)
	}
	if _, err := f.request("bob", "b.jpg", 1000, "image/jpeg"); err != nil {
		t.Errorf("another member refused during the flood: %v", err)
	}
	f.advance(time.Minute)
	if _, err := f.request("alice", "a.jpg", 1000, "image/jpeg"); err != nil {
		t.Errorf("refused a minute later: %v", err)
	}
	f.advance(DefaultSlotLifetime)
	if n, err := f.u.Sweep(); err != nil || n != DefaultSlotRate+2 {
		t.Errorf("sweep removed %d (%v)", n, err)
	}
	if u := f.usage("alice"); u != (store.Usage{}) {
		t.Errorf("unused slots still charged: %+v", u)
	}
	if res, _ := f.u.Totals(); res != 0 {
		t.Errorf("reserved %d after the sweep", res)
	}
	if l := f.files(); len(l) != 0 {
		t.Errorf("files left: %v", l)
	}
}

func TestPendingCap(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxPending = 3 })
	for range 3 {
		f.slot("alice", "a.jpg", 10, "image/jpeg")
	}
	if _, err := f.request("alice", "a.jpg", 10, "image/jpeg"); cond(err) != "wait/resource-constraint" {
		t.Fatalf("4th unused slot: %v", cond(err))
	}
	// Once their PUT time ran out they no longer count, without a sweep.
	f.advance(DefaultSlotLifetime)
	if _, err := f.request("alice", "a.jpg", 10, "image/jpeg"); err != nil {
		t.Fatalf("after the old slots expired: %v", err)
	}
	if u := f.usage("alice"); u.Items != 1 || u.Bytes != 10 {
		t.Errorf("usage %+v, want the one live slot", u)
	}
}

func TestDailyQuota(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.DailyQuota = 1000 })
	url := f.slot("alice", "a.bin", 600, "")
	if resp := f.put(url, random(600), ""); resp.StatusCode != 201 {
		t.Fatal(resp.Status)
	}
	f.advance(time.Hour)
	_, err := f.request("alice", "b.bin", 600, "")
	var se *server.StanzaError
	if !errors.As(err, &se) || se.Condition != "resource-constraint" || se.Type != "wait" {
		t.Fatalf("over the daily quota: %v", err)
	}
	want := f.clock().Add(23 * time.Hour).Format(time.RFC3339)
	if se.Extra == nil || se.Extra.Local != "retry" || se.Extra.Get("stamp") != want {
		t.Errorf("retry %v, want stamp %s", se.Extra, want)
	}
	if _, err := f.request("bob", "b.bin", 600, ""); err != nil {
		t.Errorf("bob refused: %v", err)
	}
	f.advance(23 * time.Hour)
	if _, err := f.request("alice", "b.bin", 600, ""); err != nil {
		t.Errorf("a day later: %v", err)
	}
}

// TestGlobalCap: all uploads together get at most a quarter of the space
// they could use (free plus their own).
func TestGlobalCap(t *testing.T) {
	f := newFixture(t, nil)
	f.free = 4000
	if _, err := f.request("alice", "a", 1001, ""); cond(err) != "wait/resource-constraint" {
		t.Fatalf("over the cap: %v", cond(err))
	}
	url := f.slot("alice", "a", 600, "")
	// Reserved slots count before they are written.
	if _, err := f.request("bob", "b", 401, ""); cond(err) != "wait/resource-constraint" {
		t.Fatalf("over the cap with a reservation: %v", cond(err))
	}
	if resp := f.put(url, random(600), ""); resp.StatusCode != 201 {
		t.Fatal(resp.Status)
	}
	f.free = 3400 // the file took its 600 bytes
	f.slot("bob", "b", 400, "")
	if _, err := f.request("bob", "c", 1, ""); cond(err) != "wait/resource-constraint" {
		t.Fatalf("at the cap: %v", cond(err))
	}
	if u := f.usage("bob"); u.Bytes != 400 {
		t.Errorf("refused slot charged: %+v", u)
	}
}

// TestAccountBudget: an upload counts against the member's storage
// budget shared with every other store.
func TestAccountBudget(t *testing.T) {
	f := newFixture(t, nil)
	err := f.srv.Store.Update(func(tx *bolt.Tx) error {
		return store.Charge(tx, "alice", "private", store.AccountBytes-500, 1, store.Limit{})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.request("alice", "a", 501, ""); cond(err) != "wait/resource-constraint" {
		t.Fatalf("over the account budget: %v", cond(err))
	}
	f.slot("alice", "a", 500, "")
}

func TestExpiry(t *testing.T) {
	f := newFixture(t, nil)
	if f.u.timer.armed() {
		t.Error("sweep timer armed with nothing stored (an idle box must not wake)")
	}
	data := random(5000)
	url := f.slot("alice", "a.jpg", 5000, "image/jpeg")
	if !f.u.timer.armed() {
		t.Error("sweep timer not armed after a slot")
	}
	f.put(url, data, "image/jpeg")
	f.advance(DefaultExpiry - time.Second)
	if resp, _ := f.get(url); resp.StatusCode != 200 {
		t.Fatalf("before expiry: %d", resp.StatusCode)
	}
	if n, _ := f.u.Sweep(); n != 0 {
		t.Errorf("swept %d before expiry", n)
	}
	f.advance(time.Second)
	// Expired is not served even before the sweep runs.
	if resp, _ := f.get(url); resp.StatusCode != 404 {
		t.Errorf("expired file served: %d", resp.StatusCode)
	}
	if n, err := f.u.Sweep(); n != 1 || err != nil {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if l := f.files(); len(l) != 0 {
		t.Errorf("files left after expiry: %v", l)
	}
	if u := f.usage("alice"); u != (store.Usage{}) {
		t.Errorf("expired file still charged: %+v", u)
	}
	// The timer's own run re-arms only while something is stored.
	f.u.timer.mu.Lock()
	if f.u.timer.t != nil {
		f.u.timer.t.Stop()
	}
	f.u.timer.mu.Unlock()
	f.u.timer.fire()
	if f.u.timer.armed() {
		t.Error("sweep timer re-armed with nothing left")
	}
}

func TestSweepDelay(t *testing.T) {
	f := newFixture(t, nil)
	now := f.clock()
	if d := f.u.timer.delay(now.Add(time.Minute)); d != DefaultSweepEvery {
		t.Errorf("delay for a slot due in a minute: %v, want the hourly floor", d)
	}
	if d := f.u.timer.delay(now.Add(48 * time.Hour)); d != 48*time.Hour {
		t.Errorf("delay %v, want 48h", d)
	}
}

// TestPutBadLength: a PUT longer or shorter than its slot, by
// Content-Length or in a chunked body, is refused, leaves no file, and the
// slot can still be used.
func TestPutBadLength(t *testing.T) {
	f := newFixture(t, nil)
	data := random(1000)
	url := f.slot("alice", "a.bin", 1000, "application/octet-stream")
	send := func(body io.Reader, length int64) int {
		req, _ := http.NewRequest("PUT", url, body)
		req.ContentLength = length
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	onlyReader := func(b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} } // no length: chunked
	for _, c := range []struct {
		name string
		code int
		body io.Reader
		n    int64
	}{
		{"Content-Length longer", 413, bytes.NewReader(random(1001)), 1001},
		{"Content-Length shorter", 400, bytes.NewReader(random(999)), 999},
		{"chunked longer", 413, onlyReader(random(5000)), -1},
		{"chunked shorter", 400, onlyReader(random(999)), -1},
	} {
		if got := send(c.body, c.n); got != c.code {
			t.Errorf("%s: %d, want %d", c.name, got, c.code)
		}
		if l := f.files(); len(l) != 0 {
			t.Errorf("%s left %v", c.name, l)
		}
	}
	if resp := f.put(url, data, "text/plain"); resp.StatusCode != 400 {
		t.Errorf("wrong Content-Type: %d", resp.StatusCode)
	}
	if got := send(onlyReader(data), -1); got != 201 {
		t.Fatalf("chunked, right length: %d", got)
	}
	if _, b := f.get(url); !bytes.Equal(b, data) {
		t.Error("file differs")
	}
}

func TestPutExpiredOrUnknown(t *testing.T) {
	f := newFixture(t, nil)
	url := f.slot("alice", "a.bin", 10, "")
	f.advance(DefaultSlotLifetime)
	if resp := f.put(url, random(10), ""); resp.StatusCode != 410 {
		t.Errorf("expired slot: %d, want 410", resp.StatusCode)
	}
	// A token of the right shape that was never handed out.
	other := f.ts.URL + Prefix + newToken() + "/a.bin"
	if resp := f.put(other, random(10), ""); resp.StatusCode != 404 {
		t.Errorf("unknown token: %d", resp.StatusCode)
	}
	// The right token under another name.
	renamed := url[:strings.LastIndex(url, "/")] + "/b.bin"
	f.advance(-DefaultSlotLifetime)
	if resp := f.put(renamed, random(10), ""); resp.StatusCode != 404 {
		t.Errorf("other name: %d", resp.StatusCode)
	}
	if l := f.files(); len(l) != 0 {
		t.Errorf("files left: %v", l)
	}
}

// TestInterruptedPut: the client goes away half way; nothing stays, and
// the slot can be used again.
func TestInterruptedPut(t *testing.T) {
	f := newFixture(t, nil)
	data := random(200_000)
	url := f.slot("alice", "a.bin", int64(len(data)), "")
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", url, pr)
	req.ContentLength = int64(len(data))
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	pw.Write(data[:100_000])
	waitFor(t, func() bool { return len(f.files()) == 1 }) // the temporary file
	pw.CloseWithError(errors.New("client gone"))
	<-done
	waitFor(t, func() bool { return len(f.files()) == 0 && !f.u.busy() })
	if resp := f.put(url, data, ""); resp.StatusCode != 201 {
		t.Fatalf("retry: %d", resp.StatusCode)
	}
}

func (u *Uploads) busy() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.active) > 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fullDisk is a temporary file on a disk that fills up after limit bytes.
type fullDisk struct {
	*os.File
	left int
}

func (d *fullDisk) Write(b []byte) (int, error) {
	if len(b) > d.left {
		n, _ := d.File.Write(b[:d.left])
		d.left = 0
		return n, &os.PathError{Op: "write", Path: d.Name(), Err: syscall.ENOSPC}
	}
	d.left -= len(b)
	return d.File.Write(b)
}

// TestDiskFullDuringPut: 507, and nothing left behind.
func TestDiskFullDuringPut(t *testing.T) {
	f := newFixture(t, nil)
	f.u.newTemp = func() (tempFile, error) {
		fl, err := os.CreateTemp(f.o.Dir, tmpPrefix+"*")
		if err != nil {
			return nil, err
		}
		return &fullDisk{File: fl, left: 50_000}, nil
	}
	url := f.slot("alice", "a.bin", 200_000, "")
	if resp := f.put(url, random(200_000), ""); resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("disk full: %d, want 507", resp.StatusCode)
	}
	if l := f.files(); len(l) != 0 {
		t.Errorf("left %v", l)
	}
	if resp, _ := f.get(url); resp.StatusCode != 404 {
		t.Errorf("a half file is served: %d", resp.StatusCode)
	}
}

// TestSlowPut: a client sending a byte a second is cut at the PUT's
// deadline, leaves nothing, and another member's upload meanwhile goes
// through at full speed.
func TestSlowPut(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.PutGrace = time.Second
		o.MinRate = 1000 // 2000 bytes: 1 s + 2 s for the whole PUT
		o.Stall = 10 * time.Second
	})
	url := f.slot("alice", "slow.bin", 2000, "")
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", url, pr)
	req.ContentLength = 2000
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{0, err}
			return
		}
		resp.Body.Close()
		done <- result{resp.StatusCode, nil}
	}()
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, err := pw.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()
	defer close(stop)
	defer pw.Close()
	// Meanwhile bob's upload is not held up.
	data := random(500_000)
	burl := f.slot("bob", "fast.bin", int64(len(data)), "")
	if resp := f.put(burl, data, ""); resp.StatusCode != 201 {
		t.Errorf("bob's PUT during the slow one: %d", resp.StatusCode)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow PUT was not cut")
	}
	took := time.Since(start)
	if r.code == 201 {
		t.Fatal("the slow PUT was accepted")
	}
	if took > 15*time.Second {
		t.Errorf("cut after %v; the deadline was 3 s", took)
	}
	t.Logf("slow PUT ended after %v: %d %v", took, r.code, r.err)
	waitFor(t, func() bool { return len(f.files()) == 1 && !f.u.busy() }) // only bob's file
}

// TestServedAsAttachment: HTML and SVG are never shown inline, never with
// their scripting type, and under a CSP that forbids everything.
func TestServedAsAttachment(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct {
		name, typ, wantType, wantDisp string
		putType                       string // the PUT's Content-Type when not typ
	}{
		// No type in the request: the PUT's decides.
		{"photo.png", "", "image/png", "inline", "image/png"},
		{"page.html", "", "application/octet-stream", "attachment", "text/html"},
		{"page.html", "text/html", "application/octet-stream", "attachment", ""},
		{"page.html", "text/html; charset=utf-8", "application/octet-stream", "attachment", ""},
		{"pic.svg", "image/svg+xml", "application/octet-stream", "attachment", ""},
		{"x.xhtml", "application/xhtml+xml", "application/octet-stream", "attachment", ""},
		{"doc.pdf", "application/pdf", "application/pdf", "attachment", ""},
		{"voice.ogg", "audio/ogg", "audio/ogg", "inline", ""},
		{"clip.mp4", "video/mp4", "video/mp4", "inline", ""},
		{"photo.jpg", "image/jpeg", "image/jpeg", "inline", ""},
		{"noname", "", "application/octet-stream", "attachment", ""},
		{"bad", "not a type", "application/octet-stream", "attachment", ""},
	} {
		body := []byte("<html><script>alert(1)</script></html>")
		url := f.slot("alice", c.name, int64(len(body)), c.typ)
		pt := c.typ
		if c.putType != "" {
			pt = c.putType
		}
		if resp := f.put(url, body, pt); resp.StatusCode != 201 {
			t.Fatalf("%s: PUT %d", c.name, resp.StatusCode)
		}
		resp, _ := f.get(url)
		if got := resp.Header.Get("Content-Type"); got != c.wantType {
			t.Errorf("%s (%s): Content-Type %q, want %q", c.name, c.typ, got, c.wantType)
		}
		if got := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(got, c.wantDisp+";") {
			t.Errorf("%s (%s): Content-Disposition %q, want %s", c.name, c.typ, got, c.wantDisp)
		}
		if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") || !strings.Contains(got, "sandbox") {
			t.Errorf("%s: CSP %q", c.name, got)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", c.name)
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	f := newFixture(t, nil)
	url := f.slot("alice", "a.jpg", 3, "image/jpeg")
	req, _ := http.NewRequest("OPTIONS", url, nil)
	req.Header.Set("Origin", "https://web.example")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "content-type") {
		t.Errorf("preflight: %d %v", resp.StatusCode, h)
	}
	req, _ = http.NewRequest("DELETE", url, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("DELETE: %d", resp.StatusCode)
	}
}

func TestParsePath(t *testing.T) {
	tok := newToken()
	if _, _, ok := parsePath(Prefix + tok + "/a.jpg"); !ok {
		t.Fatal("a good path refused")
	}
	for _, p := range []string{
		Prefix + tok,
		Prefix + tok + "/",
		Prefix + tok + "/..",
		Prefix + tok + "/.",
		Prefix + tok + "/a/b",
		Prefix + tok + `/..\..\xmppd.db`,
		Prefix + "../xmppd.db",
		Prefix + "..%2fxmppd.db",
		Prefix + "%2e%2e/%2e%2e/xmppd.db",
		Prefix + tok[:31] + "/a",
		Prefix + tok + "x/a",
		Prefix + strings.Repeat(".", 32) + "/a",
		Prefix + strings.Repeat("%", 32) + "/a",
		"/uploadx/" + tok + "/a",
		Prefix + tok + "/a\x00",
	} {
		if _, _, ok := parsePath(p); ok {
			t.Errorf("%q accepted", p)
		}
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":                        "photo.jpg",
		"../../etc/passwd":                 "passwd",
		`C:\Users\me\..\cat.png`:           "cat.png",
		"..":                               "file",
		".hidden":                          "hidden",
		"a b%2e?.txt":                      "a_b_2e_.txt",
		"tab\there\n.png":                  "tab_here_.png",
		"äpfel.jpg":                        "äpfel.jpg",
		strings.Repeat("x", 300) + ".jpeg": strings.Repeat("x", 95) + ".jpeg",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRecover: what a crash left behind is cleaned when the service
// starts again: temporary files, a file renamed into place whose record
// never said so, a finished record whose file is gone.
func TestRecover(t *testing.T) {
	f := newFixture(t, nil)
	keep := f.slot("alice", "keep.bin", 10, "")
	f.put(keep, random(10), "")
	lost := f.slot("alice", "lost.bin", 20, "")
	f.put(lost, random(20), "")
	half := f.slot("alice", "half.bin", 30, "")
	f.u.Close()
	// The crash: the second file vanished, a half PUT left its temporary
	// file, and the third slot's file was renamed in but not recorded.
	var lostFile, halfFile string
	f.srv.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, c := range []struct {
			url string
			out *string
		}{{lost, &lostFile}, {half, &halfFile}} {
			key, _, _ := parsePath(strings.TrimPrefix(c.url, f.ts.URL))
			r, _ := getRecord(b, key)
			*c.out = r.File
		}
		return nil
	})
	os.Remove(filepath.Join(f.o.Dir, lostFile))
	os.WriteFile(filepath.Join(f.o.Dir, tmpPrefix+"123"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(f.o.Dir, halfFile), random(30), 0o600)

	// A second server on the same store and directory.
	srv2, _ := server.New("example.test", f.srv.Store, f.srv.Log)
	u2, err := Register(srv2, f.o)
	if err != nil {
		t.Fatal(err)
	}
	defer u2.Close()
	if l := f.files(); len(l) != 1 {
		t.Errorf("after recovery: %v, want only the kept file", l)
	}
	if u := f.usage("alice"); u.Bytes != 10+30 || u.Items != 2 {
		t.Errorf("usage %+v: want the kept file and the open slot", u)
	}
	if res, stored := u2.Totals(); res != 40 || stored != 10 {
		t.Errorf("totals %d %d", res, stored)
	}
}

func TestAccountDeleted(t *testing.T) {
	f := newFixture(t, nil)
	url := f.slot("alice", "a.bin", 10, "")
	f.put(url, random(10), "")
	f.slot("alice", "b.bin", 10, "")
	burl := f.slot("bob", "b.bin", 10, "")
	f.put(burl, random(10), "")
	if err := f.srv.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := f.get(url); resp.StatusCode != 404 {
		t.Errorf("deleted member's file served: %d", resp.StatusCode)
	}
	if l := f.files(); len(l) != 1 {
		t.Errorf("files: %v, want bob's only", l)
	}
	if res, stored := f.u.Totals(); res != 10 || stored != 10 {
		t.Errorf("totals %d %d", res, stored)
	}
}

// TestConcurrentPuts: two PUTs of one slot. While one runs the other is
// refused (409); one that looked at the slot before the first finished and
// comes after it is refused too, and the finished file is not touched
// (before the second look it was renamed over and then removed).
func TestConcurrentPuts(t *testing.T) {
	f := newFixture(t, nil)
	a, b := random(50_000), random(50_000)
	url := f.slot("alice", "a.bin", int64(len(a)), "")
	// A second PUT while the first is sending.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", url, pr)
	req.ContentLength = int64(len(a))
	done := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	pw.Write(a[:1000])
	waitFor(t, f.u.busy)
	if resp := f.put(url, b, ""); resp.StatusCode != 409 {
		t.Errorf("PUT during a PUT: %d, want 409", resp.StatusCode)
	}
	// A third one looks now and is held until the first has finished.
	release := make(chan struct{})
	looked := make(chan struct{})
	f.u.afterLookup = func() {
		close(looked)
		<-release
	}
	third := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("PUT", url, bytes.NewReader(b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			third <- -1
			return
		}
		resp.Body.Close()
		third <- resp.StatusCode
	}()
	<-looked
	f.u.afterLookup = nil
	pw.Write(a[1000:])
	pw.Close()
	if code := <-done; code != 201 {
		t.Fatalf("first PUT: %d", code)
	}
	close(release)
	if code := <-third; code != 409 {
		t.Errorf("PUT that looked before the first finished: %d, want 409", code)
	}
	if _, got := f.get(url); !bytes.Equal(got, a) {
		t.Errorf("the finished file changed or went: %d bytes", len(got))
	}
}

// The admin shortens how long shared files are kept: files already stored
// go by the new time (and are not served past it); lengthened again, a
// file is served longer than its slot first said.
func TestSetExpiryAppliesToStoredFiles(t *testing.T) {
	f := newFixture(t, nil)
	data := random(1000)
	url := f.slot("alice", "a.jpg", 1000, "image/jpeg")
	f.put(url, data, "image/jpeg")
	f.advance(8 * 24 * time.Hour)
	f.u.SetExpiry(7 * 24 * time.Hour)
	if resp, _ := f.get(url); resp.StatusCode != 404 {
		t.Errorf("file older than the new retention served: %d", resp.StatusCode)
	}
	if n, err := f.u.Sweep(); n != 1 || err != nil {
		t.Fatalf("sweep after shortening: %d %v", n, err)
	}
	url = f.slot("alice", "b.jpg", 1000, "image/jpeg")
	f.put(url, data, "image/jpeg")
	f.u.SetExpiry(90 * 24 * time.Hour)
	f.advance(60 * 24 * time.Hour)
	if resp, _ := f.get(url); resp.StatusCode != 200 {
		t.Errorf("after lengthening to 90 days, a 60-day-old file: %d", resp.StatusCode)
	}
	if n, _ := f.u.Sweep(); n != 0 {
		t.Errorf("swept %d files within the retention", n)
	}
	if !f.u.timer.armed() {
		t.Error("sweep timer not armed after SetExpiry with a file stored")
	}
}
