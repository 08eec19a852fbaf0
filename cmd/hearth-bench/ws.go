package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// XMPP over WebSocket (RFC 7395) for the benchmark: idle sessions and
// messages at saturation over each server's WebSocket endpoint (xmppd/ws,
// Prosody's mod_websocket), measured the same way as over TCP.

// xconn is what the load generator needs of a logged-in connection: a
// client.Conn over TCP, or a wsConn.
type xconn interface {
	JID() string
	Mechanism() string
	Send([]byte) error
	ReadStanza() ([]byte, error)
	Close() error
}

const nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// wsConn is a minimal RFC 7395 client: SCRAM (no channel binding: the
// endpoint is plain HTTP on loopback), bind, one element per message.
type wsConn struct {
	c         *websocket.Conn
	jid, mech string
}

func wsDial(ctx context.Context, url string, cfg client.Config) (*wsConn, error) {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"xmpp"}})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	w := &wsConn{c: c}
	if err := w.login(ctx, cfg); err != nil {
		c.CloseNow()
		return nil, err
	}
	return w, nil
}

func (w *wsConn) send(ctx context.Context, s string) error {
	return w.c.Write(ctx, websocket.MessageText, []byte(s))
}

func (w *wsConn) next(ctx context.Context) (*stream.Element, error) {
	_, b, err := w.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	return stream.ParseElement(b)
}

// open sends <open/> and returns the stream features.
func (w *wsConn) open(ctx context.Context, domain string) (*stream.Element, error) {
	if err := w.send(ctx, "<open xmlns='"+nsFraming+"' to='"+domain+"' version='1.0'/>"); err != nil {
		return nil, err
	}
	for {
		el, err := w.next(ctx)
		if err != nil {
			return nil, err
		}
		if el.Local == "features" {
			return el, nil
		}
		if el.Local != "open" {
			return nil, fmt.Errorf("ws: %s before the features", el)
		}
	}
}

func (w *wsConn) login(ctx context.Context, cfg client.Config) error {
	f, err := w.open(ctx, cfg.Domain)
	if err != nil {
		return err
	}
	for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		if strings.Contains(f.String(), ">"+m+"<") {
			w.mech = m
			break
		}
	}
	if w.mech == "" {
		return fmt.Errorf("ws: no SCRAM offered: %s", f)
	}
	sc, err := client.NewScram(w.mech, cfg.User, cfg.Password)
	if err != nil {
		return err
	}
	nsSASL := "urn:ietf:params:xml:ns:xmpp-sasl"
	if err := w.send(ctx, "<auth xmlns='"+nsSASL+"' mechanism='"+w.mech+"'>"+base64.StdEncoding.EncodeToString(sc.First())+"</auth>"); err != nil {
		return err
	}
	for done := false; !done; {
		el, err := w.next(ctx)
		if err != nil {
			return err
		}
		data, _ := base64.StdEncoding.DecodeString(el.Text())
		switch el.Local {
		case "challenge":
			resp, err := sc.Final(data)
			if err != nil {
				return err
			}
			if err := w.send(ctx, "<response xmlns='"+nsSASL+"'>"+base64.StdEncoding.EncodeToString(resp)+"</response>"); err != nil {
				return err
			}
		case "success":
			if err := sc.Verify(data); err != nil {
				return err
			}
			done = true
		default:
			return fmt.Errorf("ws: auth: %s", el)
		}
	}
	if _, err := w.open(ctx, cfg.Domain); err != nil {
		return err
	}
	if err := w.send(ctx, "<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+cfg.Resource+"</resource></bind></iq>"); err != nil {
		return err
	}
	el, err := w.next(ctx)
	if err != nil {
		return err
	}
	if el.Get("type") != "result" || el.FirstChild() == nil {
		return fmt.Errorf("ws: bind: %s", el)
	}
	w.jid = el.FirstChild().ChildText("", "jid")
	return nil
}

func (w *wsConn) JID() string       { return w.jid }
func (w *wsConn) Mechanism() string { return w.mech }

// Send sends what the generator batches (presence, runs of messages) as
// one WebSocket message per stanza.
func (w *wsConn) Send(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(b) > 0 {
		n := len(b)
		if bytes.HasPrefix(b, []byte("<message")) {
			if i := bytes.Index(b, []byte("</message>")); i >= 0 {
				n = i + len("</message>")
			}
		}
		if err := w.c.Write(ctx, websocket.MessageText, declareClient(b[:n])); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// declareClient adds xmlns='jabber:client' to a stanza whose start tag
// lacks it: an RFC 7395 message is a document of its own, and Prosody
// drops a stanza in no namespace (xmppd/ws reads it as jabber:client).
func declareClient(el []byte) []byte {
	end := bytes.IndexByte(el, '>')
	name := bytes.IndexAny(el, " />")
	if end < 0 || name < 0 || bytes.Contains(el[:end], []byte("xmlns=")) {
		return el
	}
	out := make([]byte, 0, len(el)+24)
	out = append(out, el[:name]...)
	out = append(out, " xmlns='jabber:client'"...)
	return append(out, el[name:]...)
}

func (w *wsConn) ReadStanza() ([]byte, error) {
	_, b, err := w.c.Read(context.Background())
	return b, err
}

func (w *wsConn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	w.send(ctx, "<close xmlns='"+nsFraming+"'/>")
	cancel()
	return w.c.CloseNow()
}

// wsPhase measures idle WebSocket sessions and messages at saturation
// over WebSocket on a freshly started server (pid).
func wsPhase(o *options, name string, pid int, url string, l *loader, r *result) error {
	wl := &loader{addr: l.addr, domain: l.domain, prefix: l.prefix, password: l.password, tls: l.tls, wsURL: url}
	time.Sleep(3 * time.Second)
	rest := measure(pid).rssKB
	n := o.nSmall
	ss, el, err := wl.openSessions(1, n+1, 16, false, 5*time.Minute)
	if err != nil {
		return fmt.Errorf("idle WebSocket sessions: %w", err)
	}
	log.Printf("%s: %d WebSocket sessions open in %v", name, n, el.Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	r.wsRSS = measure(pid).rssKB
	r.wsPerSess = float64(r.wsRSS-rest) / float64(n)
	r.wsN = n
	closeAll(ss)
	if o.skip["sat"] {
		return nil
	}
	ss, _, err = wl.openSessions(1, 2*o.pairs+1, 16, false, time.Minute)
	if err != nil {
		return fmt.Errorf("WebSocket message pairs: %w", err)
	}
	defer closeAll(ss)
	time.Sleep(2 * time.Second)
	log.Printf("%s: saturation over WebSocket, %d pairs, %v", name, o.pairs, o.satWindow)
	r.wsSat = saturate(pid, ss[:o.pairs], ss[o.pairs:], 64, 2*time.Second, o.satWindow)
	if r.wsSat.bad > 0 {
		r.notes = append(r.notes, fmt.Sprintf("saturation over WebSocket: %d error bounces or unexpected messages", r.wsSat.bad))
	}
	return nil
}
