package c2s

import (
	"io"
	"time"

	"github.com/hearthchat/hearth/xmppd/sasl"
)

// The clocks a connection runs on besides its reads: the pre-auth deadline
// (shorter for idle onion strangers) and the bound on one stanza's arrival
// after authentication.

// credentials is the SCRAM server's view of the account store.
func (c *C2S) credentials(user string) (*sasl.Credentials, error) {
	if c.cfg.LoginAllowed != nil && !c.cfg.LoginAllowed(user) {
		return nil, sasl.ErrUnknownUser
	}
	a, err := c.cfg.Server.Store.Account(user)
	if err != nil {
		return nil, err
	}
	return a.Credentials(), nil
}

// extendPreAuth sets the read deadline of a connection that is not bound
// yet: the auth deadline, or, over the onion listener, OnionIdleTimeout
// from now if that comes first, renewed after every element (a login is a
// few quick exchanges; a silent stranger gives its slot back).
func (x *conn) extendPreAuth() {
	if x.sess != nil {
		return
	}
	dl := x.authDeadline
	if x.ip == OnionBucket && x.c.cfg.OnionIdleTimeout > 0 {
		if idle := time.Now().Add(x.c.cfg.OnionIdleTimeout); dl.IsZero() || idle.Before(dl) {
			dl = idle
		}
	} else if dl.IsZero() {
		return
	}
	x.raw.SetDeadline(dl)
}

// stanzaClock sits under the parser. The parser reads only when it needs
// more bytes, so a read that starts while it holds part of a stanza means
// the stanza is unfinished: that is when the StanzaTimeout timer starts
// (the first byte arrived with the read before). It works the same for a
// reader that blocks and for a parked connection, whose read returns
// ErrWouldBlock and which then has no goroutine at all: the timer is what
// ends it. Between stanzas nothing is armed, so an idle session costs no
// wake-ups.
type stanzaClock struct {
	x *conn
	r io.Reader
}

func (c *stanzaClock) Read(b []byte) (int, error) {
	x := c.x
	if x.sess != nil && !x.slowArmed && x.p != nil && x.p.Partial() {
		x.slowArmed = true
		if x.slow == nil {
			x.slow = time.AfterFunc(x.c.cfg.StanzaTimeout, x.stanzaTooSlow)
		} else {
			x.slow.Reset(x.c.cfg.StanzaTimeout)
		}
	}
	return c.r.Read(b)
}

// stanzaDone stops the clock: the parser returned a whole element. The
// next unfinished one starts it again.
func (x *conn) stanzaDone() {
	if x.slowArmed {
		x.slowArmed = false
		x.slow.Stop()
	}
}

// stanzaTooSlow runs on the timer's goroutine, possibly while the
// connection is parked. Ending the session's stream closes the connection;
// the reader (woken by the poller if parked) then finishes it.
func (x *conn) stanzaTooSlow() {
	if x.ended.Load() {
		return
	}
	x.mu.Lock()
	sess, gen := x.sess, x.gen
	x.mu.Unlock()
	if sess == nil || sess.Gen() != gen {
		return
	}
	x.c.cfg.Log.Info("c2s: stanza unfinished too long", "ip", x.ip, "jid", sess.JID.String(), "after", x.c.cfg.StanzaTimeout)
	sess.CloseWithError("policy-violation", "a stanza took longer than "+x.c.cfg.StanzaTimeout.String()+" to arrive")
}

// end is how the reader ends a connection: no clock may fire for it
// afterwards (its session may hibernate and be resumed elsewhere).
func (x *conn) end() {
	x.ended.Store(true)
	x.stanzaDone()
	x.finish()
}
