// Package smacks is XEP-0198 stream management: acknowledgements, so that a
// client knows what the server has (and the server knows what the client
// got), and resumption, so that a phone that loses its network for a
// moment gets what it missed instead of losing it. Stanzas a session never
// acknowledged are re-routed when it ends for good: to the account's other
// resources or to offline storage.
//
// Why stream management is not all here. This package is the protocol: the
// <sm/> feature, <enable/>, <r/> and <a/>, the registry of resumption ids,
// the resumption timer, and re-routing what was never acknowledged when a
// session ends. The transport part lives where it must:
//
//   - session (acks.go): counting sent stanzas, the unacknowledged queue,
//     Detach/Attach, and the push-back past a high-water mark. The count
//     must move in the same order as the writes, under the lock that
//     orders them, and Attach must swap the connection and resend the
//     queue in one step; from a module that would mean a second lock and
//     a race with every Send.
//   - c2s: <resume/> is answered during stream negotiation, before a
//     resource is bound, and only the connection's end knows whether its
//     link died (hibernate) or was closed on purpose (end): bind.go resume
//     and c2s.go finish.
//   - server (sessions.go): the Resumer and hibernation hooks and
//     EndSession/EndHibernated, so that c2s reaches this package without
//     importing it; delivery.go's Redeliver is the re-routing rule, shared
//     with sessions without stream management whose queue could not be
//     written.
//
// Session state this package owns lives in the session's acks (transport,
// above) and in this package's registry; it adds no field of its own to
// the session.
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
	// Inline (XEP-0198 §"Inline"): <resume/> inside SASL2's <authenticate/>
	// (c2s answers it through the Resumer below) and <enable/> inside
	// Bind 2, answered like the nonza; its <enabled/> lands in <bound/>.
	srv.AddAuthInline(stream.New(ns, "sm"))
	srv.AddBindFeature(server.BindFeature{Var: ns, Handle: func(sess *session.Session, el *stream.Element) {
		if el.Local == "enable" {
			r.nonza(srv, sess, el)
		}
	}})
	srv.SetResumer(func(user, id string) *session.Session {
		r.mu.Lock()
		s := r.by[id]
		r.mu.Unlock()
		if s == nil || s.User != user || s.Ended() {
			return nil
		}
		// <resumed h/> reports the handled count: it must not cover a
		// message whose commit is still outstanding (server/durable.go).
		// Commits take milliseconds; a storage stall this long is
		// reported by the health check.
		if !srv.WaitCommits(s, resumeCommitWait) {
			srv.Log.Error("smacks: resuming with a storage commit outstanding", "session", s.JID.String())
		}
		return s
	})
	server.Committed.On(srv, func(sess *session.Session) {
		if on, _ := sess.AcksEnabled(); on {
			sendAck(sess, srv.DurableCount(sess))
		}
	})
	srv.OnHibernate(func(sess *session.Session) {
		gen := sess.Gen()
		timeout := ResumeTimeout
		if d, ok := sess.Value(resumeMaxKey{}).(time.Duration); ok && d < timeout {
			timeout = d
		}
		time.AfterFunc(timeout, func() {
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
			// XEP-0198 §5: the client's preferred maximum, when shorter
			// than ours (a phone that falls back to the archive sooner).
			max := ResumeTimeout
			if n, err := strconv.ParseUint(el.Get("max"), 10, 32); err == nil && n > 0 && time.Duration(n)*time.Second < max {
				max = time.Duration(n) * time.Second
				sess.SetValue(resumeMaxKey{}, max)
			}
			out += " id='" + id + "' resume='true' max='" + strconv.Itoa(int(max/time.Second)) + "'"
		}
		sess.SendRaw([]byte(out + "/>"))
	case "r":
		if on, _ := sess.AcksEnabled(); on {
			// Only what is committed: a message whose archive commit is
			// still outstanding is acknowledged once it is done
			// (server/durable.go, the Committed event below).
			sendAck(sess, srv.DurableCount(sess))
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

// resumeMaxKey holds a session's resumption timeout when its client asked
// for one shorter than ResumeTimeout.
type resumeMaxKey struct{}

// resumeCommitWait bounds how long a resumption waits for the session's
// outstanding commits.
const resumeCommitWait = 10 * time.Second

// sendAck sends <a h/> (XEP-0198 allows one unrequested).
func sendAck(sess *session.Session, h uint32) {
	sess.SendRaw([]byte("<a xmlns='" + ns + "' h='" + strconv.FormatUint(uint64(h), 10) + "'/>"))
}

// reroute delivers again what the client never confirmed (the server's
// rule, Redeliver, shared with sessions without stream management whose
// queue could not be written).
func reroute(srv *server.Server, sess *session.Session) {
	srv.Redeliver(sess, sess.TakeUnacked())
}
