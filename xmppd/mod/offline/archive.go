package offline

import (
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Offline storage and the message archive agree (issue 13; the reasoning
// is in mod/mam's package doc): a stored message that the archive module
// gave a stanza-id is indexed by that id, so that when the recipient's
// client reads the message from the archive (server.ArchiveSent) the
// offline copy is deleted instead of being sent to it again at its
// initial presence.
var (
	// bucketSID: user \0 stanza-id → message key.
	bucketSID = []byte("offline_sid")
	// bucketSIDOf: message key → stanza-id, to drop the index entry
	// with the message without parsing it.
	bucketSIDOf = []byte("offline_sid_of")
)

const nsSID = "urn:xmpp:sid:0"

// archiveID is the stanza-id el carries from the archive of by (the
// recipient's bare JID), "" if none.
func archiveID(el *stream.Element, by string) string {
	for _, c := range el.Children() {
		if c.Space == nsSID && c.Local == "stanza-id" && c.Get("by") == by {
			return c.Get("id")
		}
	}
	return ""
}

func sidKey(user, id string) []byte { return append(prefix(user), id...) }

func indexArchiveID(tx *bolt.Tx, user, id string, key []byte) error {
	if id == "" {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketSID)
	if err != nil {
		return err
	}
	of, err := tx.CreateBucketIfNotExists(bucketSIDOf)
	if err != nil {
		return err
	}
	if err := b.Put(sidKey(user, id), key); err != nil {
		return err
	}
	return of.Put(key, []byte(id))
}

// unindexArchiveID drops the index entry of the message stored under key.
func unindexArchiveID(tx *bolt.Tx, key []byte) error {
	of := tx.Bucket(bucketSIDOf)
	if of == nil {
		return nil
	}
	id := of.Get(key)
	if id == nil {
		return nil
	}
	// The message key starts with the recipient's prefix (user \0).
	p := key[:len(key)-8]
	sk := append(slices.Clone(p), id...)
	if b := tx.Bucket(bucketSID); b != nil {
		if err := b.Delete(sk); err != nil {
			return err
		}
	}
	return of.Delete(key)
}

// archiveSent deletes the stored copies of messages a client of the
// account has just read from the archive.
func (m *mod) archiveSent(p server.ArchivePage) {
	unlock := m.lock(p.User)
	defer unlock()
	var keys [][]byte
	if err := m.srv.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSID)
		if b == nil {
			return nil
		}
		for _, id := range p.IDs {
			if k := b.Get(sidKey(p.User, id)); k != nil {
				keys = append(keys, slices.Clone(k))
			}
		}
		return nil
	}); err != nil {
		m.srv.Log.Error("offline: look up archived messages", "user", p.User, "err", err)
		return
	}
	if err := m.remove(p.User, keys); err != nil {
		m.srv.Log.Error("offline: delete messages read from the archive", "user", p.User, "err", err)
	}
}
