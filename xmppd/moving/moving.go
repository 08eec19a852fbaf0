// Package moving brings a member's contacts from their old chat address to
// their account on this box (issue 15: "a member moving to Hearth gets a
// guided flow on the invite page"). The member gives the old address and
// its password once; the box logs in there as an ordinary client would and
// does both halves of XEP-0283 (Moved) for them:
//
//  1. reads the old roster;
//  2. publishes the moved statement on the old account (PEP node
//     urn:xmpp:moved:1, item "current", naming the new address), which is
//     what contacts' servers check;
//  3. files every old contact in the new roster under the same name and
//     groups; asks each contact whose presence the old account saw to
//     subscribe to the new address with <moved><old-jid/></moved> (their
//     servers switch them over by themselves where they implement
//     XEP-0283 — Hearth's mod/moved does — and their apps show a request
//     otherwise); and pre-approves (RFC 6121 §3.4) every contact who saw
//     the old account's presence, so their request back needs no click.
//
// The password is used for that one login and never stored. The old server
// is reached like any client does: SRV _xmpp-client._tcp (or the domain on
// 5222), STARTTLS with the certificate checked for the old domain, SCRAM
// only (xmppd/client), so the password never travels in clear or to a
// server that cannot prove its name.
package moving

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// NS is XEP-0283's namespace and PEP node.
const NS = "urn:xmpp:moved:1"

const (
	nsRoster = "jabber:iq:roster"
	nsPubsub = "http://jabber.org/protocol/pubsub"
	nsPubOwn = "http://jabber.org/protocol/pubsub#publish-options"
	nsData   = "jabber:x:data"
)

// MaxContacts bounds what one move files and notifies: a roster this box
// would not take (the roster module's own limit is lower) is not read
// further.
const MaxContacts = 2000

// Options says whose contacts move where.
type Options struct {
	Server   *server.Server
	User     string // the member on this box (localpart)
	Old      string // the old address, a bare JID
	Password string // the old account's password
	// Addrs resolves the old domain to host:port candidates; nil looks up
	// _xmpp-client._tcp and falls back to the domain on 5222.
	Addrs func(ctx context.Context, domain string) ([]string, error)
	// TLS overrides the check of the old server's certificate (tests
	// give their CA); nil: the system roots, for the old domain.
	TLS *tls.Config
	// Timeout bounds the whole move; 0 means a minute.
	Timeout time.Duration
}

// Result says what was done, for the page.
type Result struct {
	Contacts  int      // contacts filed in the new roster
	Notified  int      // contacts asked to follow (subscription request with <moved/>)
	Statement bool     // the old account now says where the member went
	Problems  []string // in plain words: what did not work
}

// Errors the page explains.
var (
	ErrLogin       = errors.New("moving: the old server refused the address or password")
	ErrUnreachable = errors.New("moving: the old server could not be reached")
	ErrSame        = errors.New("moving: that is this box's own address")
	ErrAddress     = errors.New("moving: not a chat address (name@server)")
)

// Move does it (see the package doc). An error means nothing changed on
// either side; Result.Problems lists what did not work once it had begun.
func Move(ctx context.Context, o Options) (Result, error) {
	var res Result
	old, err := jid.Parse(strings.TrimSpace(o.Old))
	if err != nil || old.Localpart() == "" || old.Resourcepart() != "" {
		return res, fmt.Errorf("%w: %q", ErrAddress, o.Old)
	}
	if o.Server.IsLocal(old) {
		return res, ErrSame
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	c, err := dialOld(ctx, o, old)
	if err != nil {
		return res, err
	}
	defer c.Close()
	items, err := readRoster(ctx, c)
	if err != nil {
		return res, fmt.Errorf("moving: reading the old contact list: %w", err)
	}
	newJID := o.User + "@" + o.Server.Domain
	if err := publishStatement(ctx, c, newJID); err != nil {
		res.Problems = append(res.Problems, "Your old server did not keep the note saying where you moved ("+err.Error()+"), so your contacts' apps will ask them to accept your new address by hand.")
	} else {
		res.Statement = true
	}
	cs := o.Server.Contacts()
	for _, it := range items {
		if it.jid == newJID || it.jid == old.String() {
			continue
		}
		if err := cs.File(o.User, it.jid, it.name, it.groups); err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("%s could not be added to your contacts here (%v).", it.jid, err))
			continue
		}
		res.Contacts++
		if it.from {
			// They saw the old account: their request back (their
			// server sends one when they were mutual) is approved.
			if _, err := cs.Subscribe(o.User, it.jid, "subscribed", true, nil); err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %v", it.jid, err))
			}
		}
		if !it.to {
			continue
		}
		out, err := cs.Subscribe(o.User, it.jid, "subscribe", true, nil)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("%s could not be asked to follow you (%v).", it.jid, err))
			continue
		}
		if out.Forward {
			p := stream.New(stream.NSClient, "presence", "type", "subscribe", "from", newJID, "to", it.jid)
			p.Add(stream.New(NS, "moved").Add(stream.New(NS, "old-jid").AddText(old.String())))
			o.Server.Route(p)
			res.Notified++
		}
	}
	o.Server.Log.Info("moving: contacts brought over", "user", o.User, "old", old.String(), "contacts", res.Contacts, "notified", res.Notified, "statement", res.Statement)
	return res, nil
}

func dialOld(ctx context.Context, o Options, old jid.JID) (*client.Conn, error) {
	domain := old.Domainpart()
	addrs := o.Addrs
	if addrs == nil {
		addrs = lookup
	}
	cands, err := addrs(ctx, domain)
	if err != nil || len(cands) == 0 {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, domain, err)
	}
	tc := o.TLS
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc = tc.Clone()
	tc.ServerName = domain
	var last error
	for _, a := range cands {
		c, err := client.Dial(ctx, client.Config{Addr: a, Domain: domain, User: old.Localpart(), Password: o.Password,
			Resource: "hearth-move", TLS: tc, Timeout: 20 * time.Second})
		if err == nil {
			return c, nil
		}
		var ce *client.Error
		if errors.As(err, &ce) && ce.Stage == "auth" {
			return nil, ErrLogin
		}
		last = err
	}
	return nil, fmt.Errorf("%w: %v", ErrUnreachable, last)
}

// lookup is RFC 6120 §3.2: the SRV targets in order, else the domain.
func lookup(ctx context.Context, domain string) ([]string, error) {
	var out []string
	if _, srvs, err := net.DefaultResolver.LookupSRV(ctx, "xmpp-client", "tcp", domain); err == nil {
		for _, s := range srvs {
			if s.Target == "." {
				return nil, errors.New("the domain says it offers no chat service")
			}
			out = append(out, net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))))
		}
	}
	if len(out) == 0 {
		out = append(out, net.JoinHostPort(domain, "5222"))
	}
	return out, nil
}

type item struct {
	jid, name string
	groups    []string
	to, from  bool
}

// request sends iq and waits for the answer with its id, skipping what
// else arrives (presence, pushes, messages).
func request(ctx context.Context, c *client.Conn, id, iq string) (*stream.Element, error) {
	if err := c.Send([]byte(iq)); err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	c.SetReadDeadline(dl)
	defer c.SetReadDeadline(time.Time{})
	for range 10000 {
		b, err := c.ReadStanza()
		if err != nil {
			return nil, err
		}
		el, err := stream.ParseElement(b)
		if err != nil {
			return nil, err
		}
		if el.Local == "iq" && el.Get("id") == id {
			if el.Get("type") == "error" {
				return nil, fmt.Errorf("the server answered %s", errorCondition(el))
			}
			return el, nil
		}
	}
	return nil, errors.New("no answer")
}

func errorCondition(el *stream.Element) string {
	for _, e := range el.Children() {
		if e.Local == "error" {
			for _, c := range e.Children() {
				if c.Local != "text" {
					return c.Local
				}
			}
		}
	}
	return "an error"
}

func readRoster(ctx context.Context, c *client.Conn) ([]item, error) {
	el, err := request(ctx, c, "move-roster", "<iq type='get' id='move-roster'><query xmlns='jabber:iq:roster'/></iq>")
	if err != nil {
		return nil, err
	}
	q := el.Child(nsRoster, "query")
	if q == nil {
		return nil, nil
	}
	var out []item
	for _, x := range q.Children() {
		if x.Local != "item" || len(out) >= MaxContacts {
			continue
		}
		j, err := jid.Parse(x.Get("jid"))
		if err != nil || j.Resourcepart() != "" || j.Domainpart() == "" {
			continue
		}
		it := item{jid: j.String(), name: x.Get("name")}
		switch x.Get("subscription") {
		case "both":
			it.to, it.from = true, true
		case "to":
			it.to = true
		case "from":
			it.from = true
		case "remove":
			continue
		}
		for _, g := range x.Children() {
			if g.Local == "group" && g.Text() != "" {
				it.groups = append(it.groups, g.Text())
			}
		}
		out = append(out, it)
	}
	return out, nil
}

// publishStatement publishes the moved statement with the "presence"
// access model (XEP-0283 §6: only contacts learn the new address).
func publishStatement(ctx context.Context, c *client.Conn, newJID string) error {
	var b strings.Builder
	b.WriteString("<iq type='set' id='move-statement'><pubsub xmlns='" + nsPubsub + "'><publish node='" + NS + "'><item id='current'>")
	b.WriteString("<moved xmlns='" + NS + "'><new-jid>" + escape(newJID) + "</new-jid></moved></item></publish>")
	b.WriteString("<publish-options><x xmlns='" + nsData + "' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsPubOwn + "</value></field>")
	b.WriteString("<field var='pubsub#access_model'><value>presence</value></field></x></publish-options></pubsub></iq>")
	if _, err := request(ctx, c, "move-statement", b.String()); err == nil {
		return nil
	}
	// A node made earlier with another access model fails the
	// precondition (XEP-0060 §7.1.5): publish with the node's own.
	plain := "<iq type='set' id='move-statement2'><pubsub xmlns='" + nsPubsub + "'><publish node='" + NS + "'><item id='current'>" +
		"<moved xmlns='" + NS + "'><new-jid>" + escape(newJID) + "</new-jid></moved></item></publish></pubsub></iq>"
	_, err := request(ctx, c, "move-statement2", plain)
	return err
}

func escape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")
	return r.Replace(s)
}
