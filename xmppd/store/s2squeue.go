package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The s2s queue (issue 14): messages waiting for another XMPP domain are
// kept here from before their sender's acknowledgement covers them until
// the remote server has taken them (or they bounced), so that kill -9 or
// a power cut while a peer is down loses none of them. xmppd/s2s owns the
// records; this file only lays them out.

var bucketS2SQueue = []byte("s2s-queue")

// S2SQueued is one stored message for a remote domain.
type S2SQueued struct {
	ID       uint64    // the queue's own order (key; ascending = queued order)
	At       time.Time // when it was first queued: the retry bound counts from here, across restarts
	Local    string    // our domain or service it leaves from
	Remote   string    // the domain it goes to
	From, To string
	XML      []byte // the stanza, as stream.Element.Append(nil, "") wrote it
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readStr(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, errors.New("store: s2s queue record: bad length")
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}

// PutS2SQueued stores q under its ID (again, if fn runs twice: the same
// record).
func PutS2SQueued(tx *bolt.Tx, q *S2SQueued) error {
	b, err := tx.CreateBucketIfNotExists(bucketS2SQueue)
	if err != nil {
		return fmt.Errorf("store: s2s queue: %w", err)
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(q.At.UnixNano()))
	for _, s := range []string{q.Local, q.Remote, q.From, q.To} {
		v = appendStr(v, s)
	}
	v = append(v, q.XML...)
	return b.Put(U64(q.ID), v)
}

// DeleteS2SQueued removes the record id (none: nothing to do).
func DeleteS2SQueued(tx *bolt.Tx, id uint64) error {
	b := tx.Bucket(bucketS2SQueue)
	if b == nil {
		return nil
	}
	return b.Delete(U64(id))
}

// S2SQueue returns every stored record in queued order. A record that
// cannot be decoded is returned with its ID and no XML, for the caller
// to delete and report.
func (s *Store) S2SQueue() ([]S2SQueued, error) {
	var out []S2SQueued
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketS2SQueue)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return nil
			}
			q := S2SQueued{ID: binary.BigEndian.Uint64(k)}
			if len(v) >= 8 {
				q.At = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
				rest := v[8:]
				var err error
				for _, p := range []*string{&q.Local, &q.Remote, &q.From, &q.To} {
					if *p, rest, err = readStr(rest); err != nil {
						break
					}
				}
				if err == nil {
					q.XML = append([]byte(nil), rest...)
				}
			}
			out = append(out, q)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: s2s queue: %w", err)
	}
	return out, nil
}
