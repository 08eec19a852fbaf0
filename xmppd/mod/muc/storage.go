package muc

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
)

// Buckets (this package's only):
//
//	muc_meta:    "occupant-id-key" → 32 random bytes
//	muc_rooms:   room localpart → JSON roomState
//	muc_archive: room localpart → bucket of U64(seq) → record (archive.go)
//	muc_arcmeta: room localpart → arcMeta (32 bytes)
//	muc_vcards:  room localpart → the room's vCard (vcard.go)
var (
	bucketArcMeta = []byte("muc_arcmeta")
	bucketMeta    = []byte("muc_meta")
	bucketRooms   = []byte("muc_rooms")
	bucketArchive = []byte("muc_archive")
	keyOccID      = []byte("occupant-id-key")
)

// load reads the occupant-id key (making it on first start) and the rooms.
// A temporary room left by a crash has nobody in it any more, so it goes.
func (m *Service) load() error {
	return m.srv.Store.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if k := meta.Get(keyOccID); len(k) == 32 {
			m.key = append([]byte(nil), k...)
		} else {
			m.key = make([]byte, 32)
			rand.Read(m.key)
			if err := meta.Put(keyOccID, m.key); err != nil {
				return err
			}
		}
		rb, err := tx.CreateBucketIfNotExists(bucketRooms)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketArchive); err != nil {
			return err
		}
		am, err := tx.CreateBucketIfNotExists(bucketArcMeta)
		if err != nil {
			return err
		}
		var stale []string
		err = rb.ForEach(func(k, v []byte) error {
			var s roomState
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("room %q: %w", k, err)
			}
			if !s.Config.Persistent {
				stale = append(stale, string(k))
				return nil
			}
			s.arc = decodeArcMeta(am.Get(k))
			r := newRoom(string(k), m.srv.Domain, s)
			r.ob.fanned = s.arc.Seq
			m.rooms[r.name] = r
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range stale {
			var s roomState
			json.Unmarshal(rb.Get([]byte(name)), &s)
			if err := deleteRoomTx(tx, name, &s); err != nil {
				return err
			}
		}
		return nil
	})
}

// saveTx writes r's state in tx.
func saveTx(tx *bolt.Tx, r *room) error {
	b, err := json.Marshal(&r.st)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketRooms).Put([]byte(r.name), b)
}

// save commits r's state (before the change is acknowledged).
func (m *Service) save(r *room) error {
	return m.srv.Store.Batch(func(tx *bolt.Tx) error { return saveTx(tx, r) })
}

// createTx stores a new room and charges its creator (a local member;
// "" for rooms the server makes).
func (m *Service) createTx(tx *bolt.Tx, r *room) error {
	if r.st.Creator != "" {
		if err := store.Charge(tx, r.st.Creator, RoomKind, 0, 1, store.Limit{Items: m.o.RoomsPerAccount}); err != nil {
			return err
		}
	}
	return saveTx(tx, r)
}

// deleteRoomTx removes a room, its archive, and its creator's charge.
func deleteRoomTx(tx *bolt.Tx, name string, s *roomState) error {
	if err := tx.Bucket(bucketRooms).Delete([]byte(name)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketArcMeta).Delete([]byte(name)); err != nil {
		return err
	}
	if err := deleteVCardTx(tx, name); err != nil {
		return err
	}
	ab := tx.Bucket(bucketArchive)
	if ab.Bucket([]byte(name)) != nil {
		if err := ab.DeleteBucket([]byte(name)); err != nil {
			return err
		}
	}
	if s.Creator != "" {
		return store.Charge(tx, s.Creator, RoomKind, 0, -1, store.Limit{})
	}
	return nil
}

// quotaErr maps a refused charge to resource-constraint.
func quotaErr(err error) error {
	if errors.Is(err, store.ErrQuota) {
		return withText(errResourceConstraint, "too many rooms")
	}
	return err
}

var errResourceConstraint = server.ErrResourceConstraint

// archive records: 8 bytes unix nanoseconds, then the message's XML.
func encodeRecord(nanos int64, xml string) []byte {
	b := make([]byte, 8, 8+len(xml))
	binary.BigEndian.PutUint64(b, uint64(nanos))
	return append(b, xml...)
}

func decodeRecord(v []byte) (int64, []byte, bool) {
	if len(v) < 8 {
		return 0, nil, false
	}
	return int64(binary.BigEndian.Uint64(v)), v[8:], true
}

// arcMeta is a room archive's bookkeeping.
type arcMeta struct {
	Seq   uint64 // last sequence number given
	First uint64 // lowest still stored
	Items int64
	Bytes int64
}

func (a arcMeta) encode() []byte {
	b := make([]byte, 32)
	binary.BigEndian.PutUint64(b, a.Seq)
	binary.BigEndian.PutUint64(b[8:], a.First)
	binary.BigEndian.PutUint64(b[16:], uint64(a.Items))
	binary.BigEndian.PutUint64(b[24:], uint64(a.Bytes))
	return b
}

func decodeArcMeta(b []byte) arcMeta {
	if len(b) != 32 {
		return arcMeta{}
	}
	return arcMeta{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]),
		int64(binary.BigEndian.Uint64(b[16:])), int64(binary.BigEndian.Uint64(b[24:]))}
}
