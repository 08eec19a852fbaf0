package s2s

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// WriteTimeout bounds one write to a peer: a peer that never reads fills
// its TCP window and then is cut off instead of holding the queue.
const WriteTimeout = 30 * time.Second

// link is an authenticated outgoing stream.
type link struct {
	c    net.Conn
	s    *S2S
	once sync.Once
	done chan struct{} // closed when the peer ends the stream or it fails
	// maxBytes is the largest stanza the peer accepts (XEP-0478; 0:
	// not announced).
	maxBytes int
}

// peerMaxBytes reads XEP-0478's max-bytes from a peer's stream features.
func peerMaxBytes(f *stream.Element) int {
	if f == nil {
		return 0
	}
	l := f.Child(nsLimits, "limits")
	if l == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(l.ChildText(nsLimits, "max-bytes")))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// connect dials domain and authenticates to it as local.
func (s *S2S) connect(local, domain string) (*link, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout+s.cfg.NegotiateTimeout)
	defer cancel()
	oc, err := s.dial(ctx, local, domain)
	if err != nil {
		return nil, err
	}
	method, err := s.authenticate(oc, domain)
	if err != nil {
		s.untrack(oc.c)
		oc.c.Close()
		return nil, err
	}
	s.cfg.Log.Info("s2s: connected out", "domain", domain, "from", local, "auth", method)
	oc.c.SetDeadline(time.Time{})
	oc.p.SetLimits(stream.PostAuthLimits)
	l := &link{c: oc.c, s: s, done: make(chan struct{}), maxBytes: peerMaxBytes(oc.features)}
	go l.read(oc.p)
	return l, nil
}

// read drains what the peer sends on our outgoing stream (XEP-0288
// bidirectional streams are not offered, so nothing but whitespace and a
// closing tag or stream error is expected) until it ends.
func (l *link) read(p *stream.Parser) {
	defer l.close()
	for {
		ev, err := p.Next()
		if err != nil || ev.Kind == stream.Close {
			return
		}
		if ev.Kind == stream.Stanza && ev.El.Space == stream.NSStream && ev.El.Local == "error" {
			l.s.cfg.Log.Info("s2s: stream error from peer", "err", ev.El.String())
			return
		}
	}
}

// errTooBig is a stanza larger than the peer accepts.
var errTooBig = errors.New("s2s: stanza larger than the peer accepts")

func (l *link) send(el *stream.Element) error {
	b := rename(el, stream.NSClient, NSServer).Append(nil, NSServer)
	if l.maxBytes > 0 && len(b) > l.maxBytes {
		return errTooBig
	}
	l.c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	_, err := l.c.Write(b)
	return err
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		l.c.SetWriteDeadline(time.Now().Add(time.Second))
		l.c.Write([]byte("</stream:stream>"))
		l.s.untrack(l.c)
		l.c.Close()
	})
}
