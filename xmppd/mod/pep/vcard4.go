package pep

import (
	"errors"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/mod/internal/vcardconv"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// XEP-0292 vCard4 (version 0.12, which dropped the raw <iq/> protocol
// for PEP): an account's card is the one item of its PEP node
// urn:xmpp:vcard4, published, read and notified like any PEP item (the
// access model is the one the client asks for in publish-options: Gajim
// asks "open" or "presence"; without one, XEP-0163's presence). What PEP
// adds for it:
//
//   - a payload that is not <vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'/>
//     is refused with XEP-0060 §7.1.3.5's bad-request/invalid-payload, as
//     the node's type says what it holds;
//   - accounts advertise urn:ietf:params:xml:ns:vcard-4.0 (XEP-0292 §7,
//     as Prosody's mod_vcard4 does on accounts);
//   - vcard-temp and vCard4 are one card, as with Prosody's
//     mod_vcard_legacy (XEP-0292 §2's migration requirement, with §11's
//     mapping, in mod/internal/vcardconv): a vcard-temp set rewrites the
//     mapped properties of the vCard4 (keeping what vcard-temp cannot say)
//     and notifies it; the node it creates is open, as vcard-temp cards
//     are readable by anyone and Prosody creates it so; an existing node
//     keeps the member's configuration. The other way, the vcard module
//     answers vcard-temp gets with the vCard4's mapped properties as the
//     reader may see them (server.VCard4), so a card kept to contacts
//     does not leak through vcard-temp, unlike a copy would.
//
// Notifications carry the card, like every PEP event here (Gajim and
// Movim read it from the event; XEP-0292 §4.2's payload-less event is
// allowed, not required, by XEP-0060's deliver_payloads). What it does not
// do: the raw <iq><vcard/></iq> get and set of XEP-0292 up to 0.11
// (Prosody's mod_vcard4 still answers them; the XEP dropped them and the
// clients we know use PEP); moving a vcard-temp card stored before
// vCard4 into the node without a new vcard-temp set (Prosody does it at
// login); mapping vCard4 PHOTO (the avatar is XEP-0084's, XEP-0398).
const (
	NodeVCard4 = "urn:xmpp:vcard4"
	NSVCard4   = vcardconv.NS4
)

var errInvalidPayload = appErr("modify", "bad-request", "invalid-payload")

func (m *mod) registerVCard4() {
	m.srv.AddFeature(server.ToAccount, NSVCard4)
	m.srv.SetVCard4(vcard4Store{m})
}

// checkPayload refuses a payload the node cannot hold.
func checkPayload(node string, p *stream.Element) error {
	if node == NodeVCard4 && !isVCard4(p) {
		return errInvalidPayload
	}
	return nil
}

func isVCard4(p *stream.Element) bool {
	return p != nil && p.Space == NSVCard4 && p.Local == "vcard"
}

// vcard4Store is server.VCard4.
type vcard4Store struct{ m *mod }

func (v vcard4Store) Get(owner string, viewer jid.JID) (*stream.Element, bool, error) {
	mt, items, err := v.m.db.node(owner, NodeVCard4, nil, 1)
	if err != nil || mt == nil || len(items) == 0 {
		return nil, false, err
	}
	card := items[0].FirstChild()
	if !isVCard4(card) {
		// Published before the node's payload was checked: not a card.
		return nil, false, nil
	}
	if !v.m.allowed(owner, viewer.Bare().String(), mt.C) {
		return nil, true, nil
	}
	return card, true, nil
}

// errUnchanged: the vcard-temp set changes nothing the vCard4 holds.
var errUnchanged = errors.New("pep: vCard4 unchanged")

func (v vcard4Store) SetFromLegacy(owner string, card *stream.Element) error {
	cfg, item, err := v.m.db.rewriteLast(owner, NodeVCard4, map[string][]string{"pubsub#access_model": {AccessOpen}},
		func(id string, last *stream.Element) (*stream.Element, error) {
			var old *stream.Element
			if last != nil && isVCard4(last.FirstChild()) {
				old = last.FirstChild()
			}
			merged := vcardconv.Merge(old, card)
			// A vcard-temp set that changes no mapped property (a client
			// storing a new PHOTO) neither notifies contacts nor makes an
			// empty vCard4.
			if old == nil && len(merged.Children()) == 0 || old != nil && merged.String() == old.String() {
				return nil, errUnchanged
			}
			item := stream.New(NS, "item", "id", id).Add(merged)
			if len(item.Append(nil, "")) > MaxItemSize {
				return nil, errTooBig
			}
			return item, nil
		})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return storeErr(err)
	}
	v.m.notify(owner, NodeVCard4, cfg, stream.New(NSEvent, "items", "node", NodeVCard4).Add(eventItem(item)))
	return nil
}

// rewriteLast publishes on user's node the item build makes of the
// node's last one (nil if none), under that item's id ("current" when
// there is none), in one transaction. A node that does not exist is
// created with fields; an existing one keeps its configuration.
func (d *db) rewriteLast(user, node string, fields map[string][]string,
	build func(id string, last *stream.Element) (*stream.Element, error)) (config, *stream.Element, error) {
	var cfg config
	var item *stream.Element
	err := d.nodeBatch(user, node, func(tx *bolt.Tx, b *bolt.Bucket, m *meta) (err error) {
		id, f := "current", fields
		var last *stream.Element
		if m != nil {
			f = nil // the member's configuration stands
			if n := len(m.Items); n > 0 {
				id = m.Items[n-1]
				if raw := b.Get(itemKey(user, node, id)); raw != nil {
					if last, err = stream.ParseElement(raw); err != nil {
						return err
					}
				}
			}
		}
		if item, err = build(id, last); err != nil {
			return err
		}
		cfg, err = publishTx(tx, b, user, node, m, f, item)
		return err
	})
	return cfg, item, err
}
