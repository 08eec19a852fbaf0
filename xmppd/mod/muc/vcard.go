package muc

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Room avatars: a vcard-temp vCard on the room JID (as Prosody's
// mod_vcard_muc and Conversations do), set by owners, read by whoever may
// read the room; its photo's SHA-1 is muc#roominfo_avatarhash in the
// room's disco#info so clients know when to fetch it again.

const nsVCard = "vcard-temp"

// MaxRoomVCard bounds a room's vCard (the photo is in it, base64): room
// avatars are small thumbnails; a 10 MB avatar is refused.
const MaxRoomVCard = 128 << 10

var bucketVCards = []byte("muc_vcards")

func (m *Service) vcardGet(st *server.Stanza) (*stream.Element, error) {
	// An occupant's vCard (room@host/nick) does not come here: it is
	// passed on to the occupant's account (iq.go).
	r, err := m.roomOf(st)
	if err != nil {
		return nil, err
	}
	allowed := r.mayRead(bareOf(st.From), r.occupantOf(st.From) != nil)
	name := r.name
	r.mu.Unlock()
	if !allowed {
		return nil, withText(errForbidden, "not a member of this room")
	}
	var v []byte
	err = m.srv.Store.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketVCards); b != nil {
			v = append([]byte(nil), b.Get([]byte(name))...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return stream.New(nsVCard, "vCard"), nil
	}
	el, err := stream.ParseElement(v)
	if err != nil {
		return nil, err
	}
	return el, nil
}

func (m *Service) vcardSet(st *server.Stanza) (*stream.Element, error) {
	r, err := m.roomOf(st)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	if r.aff(bareOf(st.From)) != "owner" {
		return nil, withText(errForbidden, "only owners may set the room's avatar")
	}
	vc := st.El.FirstChild().Copy()
	x := vc.String()
	if len(x) > MaxRoomVCard {
		return nil, withText(server.ErrNotAcceptable, "the room's vCard is too large")
	}
	hash := ""
	if p := vc.Child(nsVCard, "PHOTO"); p != nil {
		raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p.ChildText(nsVCard, "BINVAL")), ""))
		if err != nil {
			return nil, withText(server.ErrBadRequest, "PHOTO/BINVAL is not base64")
		}
		if len(raw) > 0 {
			sum := sha1.Sum(raw)
			hash = hex.EncodeToString(sum[:])
		}
	}
	old := r.st.AvatarHash
	r.st.AvatarHash = hash
	err = m.srv.Store.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketVCards)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(r.name), []byte(x)); err != nil {
			return err
		}
		return saveTx(tx, r)
	})
	if err != nil {
		r.st.AvatarHash = old
		return nil, err
	}
	// 104: the room's information changed (clients refetch disco#info
	// and see the new avatar hash).
	for _, to := range r.sortedOccupants() {
		msg := stream.New(stream.NSClient, "message", "type", "groupchat", "from", m.roomJID(r.name))
		msg.Add(stream.New(NSUser, "x").Add(stream.New(NSUser, "status", "code", "104")))
		m.toOccupant(to, msg)
	}
	return nil, nil
}

// deleteVCardTx drops a destroyed room's vCard.
func deleteVCardTx(tx *bolt.Tx, name string) error {
	if b := tx.Bucket(bucketVCards); b != nil {
		return b.Delete([]byte(name))
	}
	return nil
}
