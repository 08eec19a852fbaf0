// Package upload is XEP-0363 HTTP File Upload: the upload.<domain> service
// hands a member a slot (a PUT URL with an unguessable token), the member's
// client PUTs the file to the box's one web server, and anyone with the
// GET URL (the same URL) downloads it until it expires.
//
// What a box in a living room needs from it, and where each lives:
//
//   - slots (slot.go): only for the box's own accounts; size limit; a
//     per-member daily quota; the member's storage budget (store.Charge,
//     kind "upload", reserved when the slot is made so concurrent slots
//     cannot overshoot, freed on expiry); a cap on all uploads of a
//     quarter of the space left under the state directory; a rate limit on
//     slot requests; a short time to start the PUT.
//   - the HTTP side (http.go): tokens and paths checked before any file
//     is touched; the body streamed to a temporary file in the upload
//     directory (memory stays flat), fsynced and renamed into place, so a
//     file is whole or absent; a deadline on the whole PUT; served with
//     http.ServeContent (Range, ETag), nosniff, CSP default-src 'none'
//     with sandbox, and as an attachment unless it is an image, audio or
//     video that browsers cannot run script in.
//   - expiry (sweep.go): a timer that wakes at most hourly, and only while
//     something is stored; what a crash left half done is cleaned at start.
//
// Files are stored under random names; the client's filename is metadata
// (shown at the end of the URL, because clients such as Conversations
// decide from the URL's extension how to show a file).
package upload

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// NS is XEP-0363's namespace.
const NS = "urn:xmpp:http:upload:0"

// Kind is what uploads are charged as in the account's storage budget.
const Kind = "upload"

// Prefix is the web path the files live under.
const Prefix = "/upload/"

// Defaults.
const (
	DefaultMaxFileSize = 100 << 20
	// DefaultDailyQuota: two large videos a day, or hundreds of photos.
	DefaultDailyQuota = 200 << 20
	DefaultExpiry     = 30 * 24 * time.Hour
	// DefaultSlotLifetime: a client PUTs right after it gets the slot.
	DefaultSlotLifetime = 5 * time.Minute
	// DefaultSlotRate slots per member per minute (a photo album shared
	// at once is a few dozen; 1,000 a minute is an attack).
	DefaultSlotRate = 60
	// DefaultMaxPending unused slots per member at once.
	DefaultMaxPending = 32
	// DefaultMinRate is the slowest PUT that is let finish: the whole PUT
	// must end within PutGrace + size/MinRate. 16 KiB/s is a poor mobile
	// link; a 100 MiB video then has 1 h 47 min.
	DefaultMinRate  = 16 << 10
	DefaultPutGrace = 30 * time.Second
	// DefaultStall: a PUT that sends nothing for this long is cut.
	DefaultStall = 30 * time.Second
	// DefaultSweepEvery is the shortest time between two expiry sweeps:
	// the box must not wake more than hourly for this (an expired file
	// is never served anyway; GET checks the time).
	DefaultSweepEvery = time.Hour
	// CapShare: all uploads together may take at most this share of the
	// space they could have (free space plus what they already use).
	CapShare = 4 // one quarter
)

// KindLimit bounds what one member keeps in uploads: the account budget
// minus room for everything else (roster, offline messages, private
// storage), so photos never stop a member's messages from being stored.
var KindLimit = store.Limit{Bytes: store.AccountBytes - 16<<20, Items: 2000}

// Options configure the service. Zero values take the defaults.
type Options struct {
	// Dir holds the files (state.Dir.Uploads()); made if missing.
	Dir string
	// BaseURL is what members' phones reach the web server at, without a
	// trailing slash ("https://club.example", "http://hearth.local"); the
	// slot's URLs are BaseURL()+Prefix+…. Asked for each slot, since the
	// certificate (and so the scheme) can change while running.
	BaseURL func() string
	// Host is the service's domain; "" for "upload."+Domain.
	Host string

	MaxFileSize  int64
	DailyQuota   int64
	Expiry       time.Duration
	SlotLifetime time.Duration
	SlotRate     int
	MaxPending   int
	MinRate      int64
	PutGrace     time.Duration
	Stall        time.Duration
	SweepEvery   time.Duration
	// FreeSpace reports the bytes available under Dir (statfs by default).
	FreeSpace func() (int64, error)
	// Now is the clock (tests move it).
	Now func() time.Time
	Log *slog.Logger
}

func (o *Options) defaults(srv *server.Server) {
	set := func(p *int64, v int64) {
		if *p <= 0 {
			*p = v
		}
	}
	setD := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	set(&o.MaxFileSize, DefaultMaxFileSize)
	set(&o.DailyQuota, DefaultDailyQuota)
	set(&o.MinRate, DefaultMinRate)
	setD(&o.Expiry, DefaultExpiry)
	setD(&o.SlotLifetime, DefaultSlotLifetime)
	setD(&o.PutGrace, DefaultPutGrace)
	setD(&o.Stall, DefaultStall)
	setD(&o.SweepEvery, DefaultSweepEvery)
	if o.SlotRate <= 0 {
		o.SlotRate = DefaultSlotRate
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.Host == "" {
		o.Host = "upload." + srv.Domain
	}
	if o.FreeSpace == nil {
		dir := o.Dir
		o.FreeSpace = func() (int64, error) { return freeSpace(dir) }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = srv.Log
	}
}

// Uploads is the running service. Its state lives here and on the server
// (under stateKey), never in package variables.
type Uploads struct {
	srv *server.Server
	o   Options
	svc *server.Service

	mu       sync.Mutex
	reserved int64 // bytes of every record, written or not
	stored   int64 // bytes of the files written
	rate     map[string]*window
	active   map[string]bool // slot keys with a PUT running
	timer    *sweepTimer
	closed   bool
	// expiry is how long a file is served after its slot was made, in
	// nanoseconds: Options.Expiry until the admin changes it (SetExpiry).
	// It applies to files already stored, as the admin expects of "keep
	// shared files for N days", so a record's own Expires is not read.
	expiry atomic.Int64
	// newTemp replaces os.CreateTemp in tests (a disk that fills up).
	newTemp func() (tempFile, error)
	// afterLookup runs in a PUT after its first look at the slot (tests
	// hold a PUT there while another one finishes the slot).
	afterLookup func()
}

type window struct {
	start time.Time
	n     int
}

type stateKey struct{}

// Register starts the service on srv: the upload.<domain> service with
// its disco, the slot iq, account deletion, the expiry sweeper. Mount
// Handler on the web server with HandleStream at Prefix. Close stops the
// sweeper.
func Register(srv *server.Server, o Options) (*Uploads, error) {
	if o.Dir == "" || o.BaseURL == nil {
		return nil, errors.New("upload: Dir and BaseURL are required")
	}
	o.defaults(srv)
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	u := &Uploads{srv: srv, o: o, rate: map[string]*window{}, active: map[string]bool{}}
	u.expiry.Store(int64(o.Expiry))
	if err := u.recover(); err != nil {
		return nil, err
	}
	if !holderOf(srv).CompareAndSwap(nil, u) {
		return nil, errors.New("upload: registered twice on one server")
	}

	u.svc = srv.AddService(o.Host, "File upload")
	u.svc.AddIdentity(server.Identity{Category: "store", Type: "file", Name: "File upload"})
	u.svc.AddFeature(NS)
	// XEP-0363 §2: the size limit as an XEP-0128 form, so clients refuse
	// a file that is too large before asking.
	u.svc.AddDiscoExtension(func(jid.JID) []*stream.Element {
		x := stream.New("jabber:x:data", "x", "type", "result")
		x.Add(stream.New("jabber:x:data", "field", "var", "FORM_TYPE", "type", "hidden").
			Add(stream.New("jabber:x:data", "value").AddText(NS)))
		x.Add(stream.New("jabber:x:data", "field", "var", "max-file-size").
			Add(stream.New("jabber:x:data", "value").AddText(strconv.FormatInt(o.MaxFileSize, 10))))
		return []*stream.Element{x}
	})
	u.timer = newSweepTimer(u) // before the first slot can arm it
	u.svc.HandleIQ("get", NS, "request", u.slotIQ)
	srv.OnAccountDeleted(u.accountDeleted)
	u.timer.arm()
	return u, nil
}

// Handler serves Prefix.
func (u *Uploads) Handler() http.Handler { return http.HandlerFunc(u.serveHTTP) }

// Close stops the sweeper. PUTs in flight end with the web server.
func (u *Uploads) Close() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.timer.stop()
}

// Totals reports the bytes of all slots (written or not) and of the files
// written.
func (u *Uploads) Totals() (reserved, stored int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reserved, u.stored
}

// Of returns the service registered on srv, or nil.
func Of(srv *server.Server) *Uploads { return holderOf(srv).Load() }

// holderOf is the module's slot on the server (a holder, so that asking
// before Register does not pin a nil).
func holderOf(srv *server.Server) *atomic.Pointer[Uploads] {
	return server.State(srv, stateKey{}, func() *atomic.Pointer[Uploads] { return new(atomic.Pointer[Uploads]) })
}

// SetExpiry changes how long files are kept (d <= 0: DefaultExpiry), for
// the files already stored too, and re-arms the sweep for the new times.
func (u *Uploads) SetExpiry(d time.Duration) {
	if d <= 0 {
		d = DefaultExpiry
	}
	u.expiry.Store(int64(d))
	u.timer.rearm()
}

// expires is when the file of r stops being served.
func (u *Uploads) expires(r *record) int64 { return r.Created + u.expiry.Load() }
