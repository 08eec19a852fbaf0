package offline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// What offline storage may hold, charged to the accounts' storage budgets
// (store.Charge) in the transaction that stores or deletes a message.
//
// A recipient keeps at most MaxMessages / MaxBytes (Kind). One sender
// filled all of it with 1,001 tiny messages, after which every other
// member's messages to that recipient bounced; so one sender may hold at
// most 1/SenderShare of it: three quarters always stay for everyone else.
// A sender is a local member by bare JID and a remote sender by its domain
// (a server could otherwise mint a new JID per message). What one local
// member has waiting across all recipients is bounded too (KindSent), so
// one member cannot put MaxBytes/SenderShare into every member's storage.
const (
	SenderShare     = 4
	MaxSentMessages = 2000
	MaxSentBytes    = 20 << 20

	// Kind is the recipient's charge, KindSent the local sender's.
	Kind     = "offline"
	KindSent = "offline_sent"
)

var (
	recipientLimit = store.Limit{Bytes: MaxBytes, Items: MaxMessages}
	shareLimit     = store.Limit{Bytes: MaxBytes / SenderShare, Items: MaxMessages / SenderShare}
	sentLimit      = store.Limit{Bytes: MaxSentBytes, Items: MaxSentMessages}
)

var (
	// bucketFrom: message key → sender key, so that deleting a message
	// frees the sender's share without parsing it.
	bucketFrom = []byte("offline_from")
	// bucketShares: recipient\0sender → bytes, count (2×uint64).
	bucketShares = []byte("offline_shares")
	// bucketOldUsage is the per-recipient count of builds before the
	// storage budget; its presence means the charges must be rebuilt.
	bucketOldUsage = []byte("offline_usage")
)

// Bounces for a message over a limit: a stanza error to its sender, never
// a silent drop (RFC 6120 §8.3.3.18, type wait: it fits again once the
// recipient has read their messages).
var (
	ErrShare = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
		Text: "you have too many messages waiting for this recipient"}
	ErrSent = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
		Text: "you have too many messages waiting in offline storage"}
)

// senderKey is whose share a message from from counts against, on the
// server for domain: a local member by bare JID, anyone remote by domain.
func senderKey(from jid.JID, domain string) string {
	if from.Domainpart() != domain || from.Localpart() == "" {
		return from.Domainpart()
	}
	return from.Bare().String()
}

// localSender is the account behind a sender key, "" for a remote sender.
func (m *mod) localSender(key string) string {
	if l, ok := strings.CutSuffix(key, "@"+m.srv.Domain); ok {
		return l
	}
	return ""
}

// charge records a stored (sign 1) or deleted (sign -1) message of size
// bytes under key, from sender, for user, and refuses a store over any
// limit with the bounce to send. It must run in the transaction that
// writes the message, and that transaction must fail with its error.
func (m *mod) charge(tx *bolt.Tx, user, sender string, key []byte, size, sign int64) error {
	sb, err := tx.CreateBucketIfNotExists(bucketShares)
	if err != nil {
		return err
	}
	fb, err := tx.CreateBucketIfNotExists(bucketFrom)
	if err != nil {
		return err
	}
	sk := store.Key(user, sender)
	sh := decodeShare(sb.Get(sk))
	sh.Bytes, sh.Items = max(sh.Bytes+sign*size, 0), max(sh.Items+sign, 0)
	// The box itself (announcements from the domain, made by an admin) is
	// not held to a sender's share: its bounce would go back to the
	// domain, where nobody reads it, and a member away for a while would
	// silently miss every announcement past a quarter of the storage. It
	// still counts against the recipient's whole storage below.
	if sign > 0 && sender != m.srv.Domain && (sh.Bytes > shareLimit.Bytes || sh.Items > shareLimit.Items) {
		return ErrShare
	}
	if err := store.Charge(tx, user, Kind, sign*size, sign, recipientLimit); err != nil {
		if errors.Is(err, store.ErrQuota) {
			return ErrFull
		}
		return err
	}
	if local := m.localSender(sender); local != "" {
		if err := store.Charge(tx, local, KindSent, sign*size, sign, sentLimit); err != nil {
			if errors.Is(err, store.ErrQuota) {
				return ErrSent
			}
			return err
		}
	}
	if sh == (store.Usage{}) {
		err = sb.Delete(sk)
	} else {
		err = sb.Put(sk, encodeShare(sh))
	}
	if err != nil {
		return err
	}
	if sign > 0 {
		return fb.Put(key, []byte(sender))
	}
	return fb.Delete(key)
}

// free is charge for a message about to be deleted from b.
func (m *mod) free(tx *bolt.Tx, user string, key, data []byte) error {
	var sender []byte
	if fb := tx.Bucket(bucketFrom); fb != nil {
		sender = fb.Get(key)
	}
	return m.charge(tx, user, string(sender), key, int64(len(data)), -1)
}

func decodeShare(v []byte) store.Usage {
	if len(v) != 16 {
		return store.Usage{}
	}
	return store.Usage{Bytes: int64(binary.BigEndian.Uint64(v)), Items: int64(binary.BigEndian.Uint64(v[8:]))}
}

func encodeShare(u store.Usage) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(u.Bytes)), uint64(u.Items))
}

// recount rebuilds every charge from the stored messages when an older
// build's usage bucket is there (an upgrade, or a roll forward after a
// rollback, during which the older build stored and deleted messages
// without charging).
func (m *mod) recount() error {
	return m.srv.Store.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOldUsage) == nil {
			return nil
		}
		for _, name := range [][]byte{bucketFrom, bucketShares} {
			if tx.Bucket(name) != nil {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		fb, err := tx.CreateBucket(bucketFrom)
		if err != nil {
			return err
		}
		sb, err := tx.CreateBucket(bucketShares)
		if err != nil {
			return err
		}
		recv, sent, shares := map[string]store.Usage{}, map[string]store.Usage{}, map[string]store.Usage{}
		add := func(mp map[string]store.Usage, k string, size int) {
			u := mp[k]
			u.Bytes += int64(size)
			u.Items++
			mp[k] = u
		}
		if b := tx.Bucket(bucketMsgs); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				i := bytes.IndexByte(k, 0)
				if i <= 0 {
					return nil
				}
				user := string(k[:i])
				sender := ""
				if el, err := stream.ParseElement(v); err == nil {
					if from, err := jid.Parse(el.Get("from")); err == nil {
						sender = senderKey(from, m.srv.Domain)
					}
				}
				add(recv, user, len(v))
				add(shares, string(store.Key(user, sender)), len(v))
				if local := m.localSender(sender); local != "" {
					add(sent, local, len(v))
				}
				return fb.Put(k, []byte(sender))
			})
			if err != nil {
				return err
			}
		}
		for k, u := range shares {
			if err := sb.Put([]byte(k), encodeShare(u)); err != nil {
				return err
			}
		}
		// From scratch and without limits: this records what is there.
		set := func(kind string, mp map[string]store.Usage) error {
			if err := store.ResetKind(tx, kind); err != nil {
				return err
			}
			for user, u := range mp {
				if err := store.Charge(tx, user, kind, u.Bytes, u.Items, store.Limit{}); err != nil {
					return err
				}
			}
			return nil
		}
		if err := set(Kind, recv); err != nil {
			return err
		}
		if err := set(KindSent, sent); err != nil {
			return err
		}
		return tx.DeleteBucket(bucketOldUsage)
	})
}
