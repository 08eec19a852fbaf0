package vcard

// Transaction-level access for xmppd/portable (XEP-0227 export and
// import), on the bucket and key Register's store uses.

import (
	"bytes"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

var bucket = []byte("vcard")

// GetTx returns user's stored vCard as XML, nil if none.
func GetTx(tx *bolt.Tx, user string) []byte {
	if b := tx.Bucket(bucket); b != nil {
		return bytes.Clone(b.Get(store.Key(user, "")))
	}
	return nil
}

// PutTx stores card as user's vCard, refusing one over MaxSize.
func PutTx(tx *bolt.Tx, user string, card *stream.Element) error {
	if len(card.Append(nil, stream.NSClient)) > MaxSize {
		return errTooLarge
	}
	b, err := tx.CreateBucketIfNotExists(bucket)
	if err != nil {
		return err
	}
	return b.Put(store.Key(user, ""), card.Append(nil, ""))
}

var errTooLarge = &tooLarge{}

type tooLarge struct{}

func (*tooLarge) Error() string { return "vcard: larger than 128 KiB" }
