package muc

import (
	"errors"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
)

// Retention of room archives (issue 15: "archive retention per server and
// per room"). Besides its count and size bounds (ArchiveItems,
// ArchiveBytes), a room keeps messages for its own retention
// (Config.RetentionDays, set by its owner in the room's form), else the
// server's (SetRetention: the appliance config's archive.retention_days,
// the same time the members' own archives keep messages).
//
// The sweep runs hourly, not per minute: a room's archive is one ordered
// bucket whose oldest records go first, so an hour's lag costs a few
// records' bytes, and the box does not wake more often for it. One tick
// deletes at most roomSweepChunk records per transaction (a member's
// message waits for the bbolt writer at most that long) and at most
// roomSweepMax in all; what is left waits for the next tick.
const (
	DefaultRetention = 30 * 24 * time.Hour
	MaxRetentionDays = 3650
	roomSweepEvery   = time.Hour
	roomSweepChunk   = 500
	roomSweepMax     = 50000
)

// fieldRetention is the room form's field for the room's own retention
// in days (0: the server's). Not a registered muc#roomconfig field, hence
// the x- prefix (XEP-0068 §6); clients show it as a text field.
const fieldRetention = "x-hearth#retention_days"

// SetRetention sets the server-wide retention of room archives (d <= 0:
// DefaultRetention).
func SetRetention(srv *server.Server, d time.Duration) {
	if m := Of(srv); m != nil {
		m.retention.Store(int64(d))
	}
}

// roomRetention is how long a room with config c keeps messages.
func (m *Service) roomRetention(c Config) time.Duration {
	if c.RetentionDays > 0 {
		return time.Duration(min(c.RetentionDays, MaxRetentionDays)) * 24 * time.Hour
	}
	if d := time.Duration(m.retention.Load()); d > 0 {
		return d
	}
	return DefaultRetention
}

// sweepTick runs one retention pass and schedules the next; it stops once
// the database is closed (the daemon stopped).
func (m *Service) sweepTick() {
	if _, err := m.sweepArchives(); errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return
	} else if err != nil {
		m.srv.Log.Error("muc: archive retention", "err", err)
	}
	time.AfterFunc(roomSweepEvery, m.sweepTick)
}

// sweepArchives deletes every room's records older than its retention,
// within the tick's bounds, and reports how many went.
func (m *Service) sweepArchives() (int, error) {
	type job struct {
		name   string
		cutoff int64
	}
	var jobs []job
	now := m.o.Now()
	m.mu.Lock()
	for name, r := range m.rooms {
		r.mu.Lock()
		ret := m.roomRetention(r.st.Config)
		r.mu.Unlock()
		jobs = append(jobs, job{name, now.Add(-ret).UnixNano()})
	}
	m.mu.Unlock()
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].name < jobs[j].name })
	total := 0
	for _, j := range jobs {
		for total < roomSweepMax {
			n, err := m.expireChunk(j.name, j.cutoff, min(roomSweepChunk, roomSweepMax-total))
			total += n
			if err != nil {
				return total, err
			}
			if n == 0 {
				break
			}
		}
	}
	return total, nil
}

// expireChunk deletes up to max of room name's oldest records written
// before cutoff (Unix nanoseconds), with the room's bookkeeping, in one
// transaction shared with the messages of the moment (Batch).
func (m *Service) expireChunk(name string, cutoff int64, max int) (int, error) {
	var n int
	err := m.srv.Store.Batch(func(tx *bolt.Tx) error {
		n = 0 // Batch may run this again
		if tx.Bucket(bucketRooms).Get([]byte(name)) == nil {
			return nil // destroyed
		}
		ab := tx.Bucket(bucketArchive).Bucket([]byte(name))
		if ab == nil {
			return nil
		}
		meta := decodeArcMeta(tx.Bucket(bucketArcMeta).Get([]byte(name)))
		c := ab.Cursor()
		k, v := c.First()
		for ; k != nil && n < max; k, v = c.First() {
			when, _, ok := decodeRecord(v)
			if ok && when >= cutoff {
				break
			}
			meta.Items--
			meta.Bytes -= int64(len(v))
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		meta.First = 0
		if k != nil {
			meta.First = u64(k)
		}
		meta.Items, meta.Bytes = max0(meta.Items), max0(meta.Bytes)
		return tx.Bucket(bucketArcMeta).Put([]byte(name), meta.encode())
	})
	return n, err
}

func max0(n int64) int64 { return max(n, 0) }
