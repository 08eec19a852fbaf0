// Package smacks is XEP-0198 stream management: acknowledgements, so that a
// client knows what the server has (and the server knows what the client
// got), and resumption, so that a phone that loses its network for a
// moment gets what it missed instead of losing it. Stanzas a session never
// acknowledged are re-routed when it ends for good: to the account's other
// resources or to offline storage.
package smacks

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"sync"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "urn:xmpp:sm:3"

// ResumeTimeout is how long a session waits for its client to come back.
var ResumeTimeout = 5 * time.Minute

type registry struct {
	mu sync.Mutex
	by map[string]*session.Session // resumption id → session
}

// Register plugs stream management into the server.
func Register(srv *server.Server) {
	r := &registry{by: map[string]*session.Session{}}
	srv.AddStreamFeature(func(*session.Session) *stream.Element { return stream.New(ns, "sm") })
	srv.HandleNonza(ns, func(sess *session.Session, el *stream.Element) { r.nonza(srv, sess, el) })
	srv.SetResumer(func(user, id string) *session.Session {
		r.mu.Lock()
		defer r.mu.Unlock()
		s := r.by[id]
		if s == nil || s.User != user || s.Ended() {
			return nil
		}
		return s
	})
	srv.OnHibernate(func(sess *session.Session) {
		gen := sess.Gen()
		time.AfterFunc(ResumeTimeout, func() {
			// Ends it only if still hibernating on that generation, in
			// one step: a client resuming just then keeps its session.
			srv.EndHibernated(sess, gen)
		})
	})
	srv.OnClosed(func(sess *session.Session) {
		if on, id := sess.AcksEnabled(); on {
			if id != "" {
				r.mu.Lock()
				delete(r.by, id)
				r.mu.Unlock()
			}
			reroute(srv, sess)
		}
	})
}

func (r *registry) nonza(srv *server.Server, sess *session.Session, el *stream.Element) {
	switch el.Local {
	case "enable":
		id := ""
		if v := el.Get("resume"); v == "true" || v == "1" {
			b := make([]byte, 15)
			rand.Read(b)
			id = base64.RawURLEncoding.EncodeToString(b)
		}
		if !sess.EnableAcks(id) {
			sess.SendRaw([]byte("<failed xmlns='" + ns + "'><unexpected-request xmlns='" + stream.NSStanzaE + "'/></failed>"))
			return
		}
		out := "<enabled xmlns='" + ns + "'"
		if id != "" {
			r.mu.Lock()
			r.by[id] = sess
			r.mu.Unlock()
			out += " id='" + id + "' resume='true' max='" + strconv.Itoa(int(ResumeTimeout/time.Second)) + "'"
		}
		sess.SendRaw([]byte(out + "/>"))
	case "r":
		if on, _ := sess.AcksEnabled(); on {
			sess.SendRaw([]byte("<a xmlns='" + ns + "' h='" + strconv.FormatUint(uint64(sess.InCount()), 10) + "'/>"))
		}
	case "a":
		h, err := strconv.ParseUint(el.Get("h"), 10, 32)
		if err != nil {
			sess.CloseWithError("undefined-condition", "bad handled count")
			return
		}
		if err := sess.Ack(uint32(h)); err != nil {
			sess.CloseWithError("undefined-condition", "acknowledged stanzas that were never sent")
		}
	default:
		sess.CloseWithError("unsupported-stanza-type", "")
	}
}

// reroute delivers again what the client never confirmed (the server's
// rule, Redeliver, shared with sessions without stream management whose
// queue could not be written).
func reroute(srv *server.Server, sess *session.Session) {
	srv.Redeliver(sess, sess.TakeUnacked())
}
