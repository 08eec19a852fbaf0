// Package muc is XEP-0045 group chat on groups.<domain>: rooms made on
// first join, occupants with roles and affiliations, room messages fanned
// out with the sender's occupant JID, a room archive (XEP-0313 on the room)
// that also feeds history on join, occupant-id (XEP-0421) and stanza-id
// (XEP-0359).
//
// Where each concern lives:
//
//   - muc.go: the service, its options, dispatch of stanzas to rooms.
//   - room.go: a room's state and configuration, disco, the owner form.
//   - occupants.go: join, leave, nickname rules, presence, roles.
//   - messages.go: groupchat and private messages, subject, invitations.
//   - lock.go: rooms locked until their owner configures them (§10.1),
//     and what Prosody, ejabberd and the clients do about it.
//   - iq.go: iqs between occupants, passed on with occupant JIDs (§7.5).
//   - voice.go: voice requests in moderated rooms (§7.13, §8.6).
//   - admin.go: affiliation and role changes (muc#admin), destroy.
//   - archive.go: the room archive, history on join, MAM queries.
//   - moderate.go: retraction (XEP-0424) and moderation (XEP-0425).
//   - register.go: registered nicknames.
//   - vcard.go: room avatars (vcard-temp on the room).
//   - club.go: rooms the server runs (the default room, circles).
//   - storage.go: the bbolt buckets.
//
// Room creation: a room a member makes by joining is locked until its
// owner configures it or accepts the defaults (XEP-0045 §10.1), as in
// Prosody 0.12 (muc_room_locking, on by default; 5-minute timeout);
// ejabberd 23.01 does not lock. Converse 14 (the web chat) accepts the
// defaults on 201 by itself (read in its source); a client that does
// neither (a slixmpp bot that only joins) gets a room others can enter
// after LockTimeout. Details in lock.go.
//
// Concurrency: each room has one mutex, held while its state changes,
// while a change of its state is committed to storage and while the
// result is fanned out, so every occupant sees a room's stanzas in one
// order. A room message is the exception to waiting for its commit under
// the mutex (fanout.go, issue 12's benchmark): it gets its stanza-id under
// the mutex, its archive write joins the store's commit queue, and it is
// fanned out when committed, in stanza-id order, so the archive's order
// is still the delivery order. Fan-out never blocks (sessions
// have bounded queues); a delivery that fails comes back as an error
// stanza, which is handled on its own goroutine (it would otherwise try to
// take the room's mutex the fan-out holds).
//
// Durability: a room (its configuration, affiliations, subject) and an
// archived message are committed before anything is sent. The sender's
// stream-management ack covers a room's state change only after
// FromClient returns, and the commit happens inside it; it covers a room
// message only once the commit queue has committed it (server.Commit).
package muc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Namespaces.
const (
	NS         = "http://jabber.org/protocol/muc"
	NSUser     = NS + "#user"
	NSAdmin    = NS + "#admin"
	NSOwner    = NS + "#owner"
	nsData     = "jabber:x:data"
	nsDelay    = "urn:xmpp:delay"
	nsSID      = "urn:xmpp:sid:0"
	nsOccID    = "urn:xmpp:occupant-id:0"
	nsMAM      = "urn:xmpp:mam:2"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsForward  = "urn:xmpp:forward:0"
	nsPing     = "urn:xmpp:ping"
	nsDiscoI   = "http://jabber.org/protocol/disco#info"
	nsDiscoIt  = "http://jabber.org/protocol/disco#items"
	nsConfForm = NS + "#roomconfig"
	nsInfoForm = NS + "#roominfo"
	nsRequest  = NS + "#request"
)

// RoomKind is what a room costs its creator in the storage budget (items
// only: a room's own record is small and bounded by MaxAffiliations).
const RoomKind = "muc-room"

// Options bound what rooms may hold. Zero values take the defaults.
type Options struct {
	// Host is the service's domain; "" for "groups."+Domain.
	Host string
	// RoomsPerAccount: rooms one member may create (resource-constraint
	// beyond; the 10,000-rooms attack of issue 12).
	RoomsPerAccount int64
	// ArchiveItems and ArchiveBytes bound one room's archive; the oldest
	// messages go first. With RoomsPerAccount they bound what one member
	// can make the box keep.
	ArchiveItems int64
	ArchiveBytes int64
	// MaxAffiliations per room, MaxOccupants per room.
	MaxAffiliations int
	MaxOccupants    int
	// OpenCreation lets remote JIDs create rooms (off: only local members).
	OpenCreation bool
	// NoDefaultRoom: do not make the club's default room (club.go).
	NoDefaultRoom bool
	// LockTimeout: how long a room made by a join stays locked without
	// its owner's configuration (lock.go); 0 for DefaultLockTimeout,
	// negative for no locking.
	LockTimeout time.Duration
	// VoiceRequestInterval: the least time between two voice requests of
	// one occupant (voice.go); 0 for DefaultVoiceRequestInterval.
	VoiceRequestInterval time.Duration
	Now                  func() time.Time
}

// Defaults.
const (
	DefaultRoomsPerAccount = 20
	DefaultArchiveItems    = 20000
	DefaultArchiveBytes    = 8 << 20
	DefaultMaxAffiliations = 2000
	DefaultMaxOccupants    = 500
	DefaultHistory         = 20
	MaxHistory             = 200
)

func (o *Options) defaults(srv *server.Server) {
	if o.Host == "" {
		o.Host = "groups." + srv.Domain
	}
	if o.RoomsPerAccount <= 0 {
		o.RoomsPerAccount = DefaultRoomsPerAccount
	}
	if o.ArchiveItems <= 0 {
		o.ArchiveItems = DefaultArchiveItems
	}
	if o.ArchiveBytes <= 0 {
		o.ArchiveBytes = DefaultArchiveBytes
	}
	if o.MaxAffiliations <= 0 {
		o.MaxAffiliations = DefaultMaxAffiliations
	}
	if o.MaxOccupants <= 0 {
		o.MaxOccupants = DefaultMaxOccupants
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.VoiceRequestInterval <= 0 {
		o.VoiceRequestInterval = DefaultVoiceRequestInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Service is the MUC service of one server.
type Service struct {
	srv  *server.Server
	svc  *server.Service
	o    Options
	host string
	key  []byte // occupant-id key (storage.go)

	mu    sync.Mutex
	rooms map[string]*room // by localpart (already nodeprep'd by jid.Parse)

	// retention is the server's retention of room archives in
	// nanoseconds, 0 for DefaultRetention (retention.go).
	retention atomic.Int64
}

type stateKey struct{}

// Register adds groups.<domain> with the default options (the modules
// list, mods_muc.go).
func Register(srv *server.Server) {
	if _, err := RegisterWith(srv, Options{}); err != nil {
		srv.Log.Error("muc: not started", "err", err)
	}
}

// Of returns the server's MUC service, or nil.
func Of(srv *server.Server) *Service {
	return server.State(srv, stateKey{}, func() *Service { return nil })
}

// RegisterWith adds the service with o; it loads the stored rooms.
func RegisterWith(srv *server.Server, o Options) (*Service, error) {
	o.defaults(srv)
	m := &Service{srv: srv, o: o, host: strings.ToLower(o.Host), rooms: map[string]*room{}}
	if err := m.load(); err != nil {
		return nil, fmt.Errorf("muc: load rooms: %w", err)
	}
	server.State(srv, stateKey{}, func() *Service { return m })
	if !o.NoDefaultRoom {
		if err := m.EnsureRoom(DefaultRoom, "Everyone", true); err != nil {
			return nil, fmt.Errorf("muc: the club's default room: %w", err)
		}
	}
	svc := srv.AddService(o.Host, "Group chats")
	m.svc = svc
	svc.AddIdentity(server.Identity{Category: "conference", Type: "text", Name: "Group chats"})
	for _, f := range []string{NS, nsMAM, nsSID, nsOccID, NS + "#self-ping-optimization", nsRetract, nsModerate, nsRequest} {
		svc.AddFeature(f)
	}
	svc.SetItems(m.publicRooms)
	svc.HandleIQ("get", nsDiscoI, "query", m.discoInfo)
	svc.HandleIQ("get", nsDiscoIt, "query", m.discoItems)
	svc.HandleIQ("get", NSAdmin, "query", m.adminGet)
	svc.HandleIQ("set", NSAdmin, "query", m.adminSet)
	svc.HandleIQ("get", NSOwner, "query", m.ownerGet)
	svc.HandleIQ("set", NSOwner, "query", m.ownerSet)
	svc.HandleIQ("set", nsMAM, "query", m.mamQuery)
	svc.HandleIQ("get", nsMAM, "query", m.mamForm)
	svc.HandleIQ("get", nsPing, "ping", m.ping)
	svc.HandleIQ("set", nsModerate, "moderate", m.moderate)
	svc.HandleIQ("get", nsVCard, "vCard", m.vcardGet)
	svc.HandleIQ("get", nsRegister, "query", m.registerGet)
	svc.HandleIQ("set", nsRegister, "query", m.registerSet)
	svc.HandleIQ("set", nsVCard, "vCard", m.vcardSet)
	svc.Handle(m.handle)
	svc.HandleFullIQ(m.occupantIQ)
	srv.OnAccountDeleted(m.accountDeleted)
	// After accountDeleted (handlers run in order): an AllLocal room's
	// occupants are told once, after any stored affiliation is gone.
	m.watchClubAccounts() // club.go
	time.AfterFunc(roomSweepEvery, m.sweepTick)
	return m, nil
}

// handle takes the service's messages and presence.
func (m *Service) handle(st *server.Stanza) {
	if st.El.Local == "iq" {
		// Answers to iqs the room passed on to an occupant (iq.go);
		// anything else answers nothing we asked.
		m.occupantIQAnswer(st)
		return
	}
	if st.Type() == "error" {
		// A fan-out that failed (the occupant's session is gone): drop
		// the occupant, on its own goroutine — the fan-out that caused
		// it holds the room's mutex.
		go m.deliveryFailed(st)
		return
	}
	if st.To.Localpart() == "" {
		if st.El.Local == "message" {
			m.srv.Bounce(st, server.ErrServiceUnavailable)
		}
		return
	}
	switch st.El.Local {
	case "presence":
		m.presence(st)
	case "message":
		m.message(st)
	}
}

// roomJID is room@host.
func (m *Service) roomJID(name string) string { return name + "@" + m.host }

// occupantID is XEP-0421's id: a keyed hash of the real bare JID, per
// room, so that it is stable across nick changes and reconnects but tells
// nothing about the JID and differs between rooms.
func (m *Service) occupantID(roomName, bare string) string {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(roomName))
	h.Write([]byte{0})
	h.Write([]byte(bare))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

// send routes el (built by the room) to its recipient.
func (m *Service) send(el *stream.Element) { m.srv.Route(el) }

// errorFrom sends err for st from the address st was sent to.
func (m *Service) bounce(st *server.Stanza, err error) { m.srv.Bounce(st, err) }

// withText is err with a human-readable text.
func withText(err *server.StanzaError, text string) *server.StanzaError {
	e := *err
	e.Text = text
	return &e
}

var (
	errConflict     = server.Err("cancel", "conflict")
	errRegistration = server.Err("auth", "registration-required")
	errNotAuth      = server.Err("auth", "not-authorized")
	errNotAllowed   = server.ErrNotAllowed
	errForbidden    = server.ErrForbidden
)

// bareOf is the bare JID string of j.
func bareOf(j jid.JID) string { return j.Bare().String() }
