package c2s

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
	"mellium.im/xmpp/jid"
)

// After SASL: resource binding, XEP-0198 resumption, and handing the connection to its session.

// adopt makes sess this connection's session: from now on everything is
// written through its queue, and the reader may park.
func (x *conn) adopt(sess *session.Session, gen uint64) {
	if x.idle != nil {
		ic := x.idle
		poller := x.c.poller
		sess.SetBeforeClose(func() func() {
			x.pmu.Lock()
			defer x.pmu.Unlock()
			x.pclosed = true
			if wake := poller.Forget(ic); wake != nil {
				return func() { go wake() }
			}
			return nil
		})
	}
	x.mu.Lock()
	x.sess = sess
	x.gen = gen
	x.mu.Unlock()
	x.c.ips.release(x.ip)
	x.unauth = false
	x.raw.SetDeadline(time.Time{})
	x.p.SetLimits(stream.PostAuthLimits)
	if x.idle != nil {
		x.idle.SetNonblocking(true)
	}
}

func (x *conn) bind(iq, b *stream.Element) bool {
	srv := x.c.cfg.Server
	res := strings.TrimSpace(b.ChildText(nsBind, "resource"))
	if res == "" {
		r := make([]byte, 6)
		rand.Read(r)
		res = "hearth-" + hex.EncodeToString(r)
	}
	full, err := jid.New(x.user, srv.Domain, res)
	if err != nil {
		x.send(server.ErrorReply(iq, server.ErrBadRequest))
		return true
	}
	sess := session.New(x.nc, full, stream.NSClient)
	replaced, err := srv.Router.Bind(sess)
	if err != nil {
		x.send(server.ErrorReply(iq, server.ErrResourceConstraint))
		return true
	}
	if replaced != nil {
		replaced.CloseWithError("conflict", "replaced by a new connection")
	}
	x.adopt(sess, 1)
	reply := stream.New(stream.NSClient, "iq", "type", "result", "id", iq.Get("id"))
	reply.Add(stream.New(nsBind, "bind").Add(stream.New(nsBind, "jid").AddText(full.String())))
	sess.Send(reply)
	srv.Bound(sess)
	return true
}

// resume takes over a hibernating session (XEP-0198 §5) instead of binding
// a new resource: the client gets what it missed, nothing is lost.
func (x *conn) resume(el *stream.Element) bool {
	srv := x.c.cfg.Server
	h, err := strconv.ParseUint(el.Get("h"), 10, 32)
	if err != nil {
		x.write([]byte("<failed xmlns='" + nsSM + "'><bad-request xmlns='" + stream.NSStanzaE + "'/></failed>"))
		return true
	}
	sess := srv.Resume(x.user, el.Get("previd"))
	if sess == nil {
		x.write([]byte("<failed xmlns='" + nsSM + "'><item-not-found xmlns='" + stream.NSStanzaE + "'/></failed>"))
		return true
	}
	prefix := fmt.Sprintf("<resumed xmlns='%s' previd='%s' h='%d'/>", nsSM, el.Get("previd"), sess.InCount())
	gen, err := sess.Attach(x.nc, uint32(h), []byte(prefix))
	if err != nil {
		x.write([]byte("<failed xmlns='" + nsSM + "'><unexpected-request xmlns='" + stream.NSStanzaE + "'/></failed>"))
		return true
	}
	x.adopt(sess, gen)
	return true
}
