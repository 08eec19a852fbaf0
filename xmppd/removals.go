package xmppd

// Removing a member with a grace period (the admin pages' members page):
// the account is disabled at once — logins refused, connected devices
// closed — and deleted for good once the grace period has passed, unless
// an admin undoes it first.
//
// Clocks. A Pi has no battery clock: it boots at the time it last saved
// and jumps forward (sometimes by months) once NTP answers, and a wrong
// NTP answer could jump it anywhere. A deadline stored as a wall-clock
// time would then delete accounts early. So the stored figure is not a
// deadline but the grace time still left, and only time measured on the
// monotonic clock while xmppd runs is taken off it (every removalTick,
// and at start with nothing taken off). The figure is written back on
// every tick, so a power cut loses at most one tick of credit: the
// deletion can come later than 7 days after the removal (by the time the
// box was off, plus up to a tick), never earlier. The wall-clock time of
// the removal is kept for the page only.

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
)

// RemovalGrace is how long a removed account can still be restored.
const RemovalGrace = 7 * 24 * time.Hour

// removalTick is how often the time left is counted down and written.
var removalTick = time.Hour

var bucketRemovals = []byte("removals") // user → removal (JSON)

type removal struct {
	Since time.Time     `json:"since"` // wall clock at removal; display only
	Left  time.Duration `json:"left"`  // grace left, counted on the monotonic clock
	By    string        `json:"by,omitempty"`
}

// removing reports whether user is being removed (and so disabled).
func removing(st *store.Store, user string) (removal, bool) {
	var r removal
	ok := false
	st.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRemovals); b != nil {
			if v := b.Get([]byte(user)); v != nil {
				// An unreadable record still disables: never the other way.
				json.Unmarshal(v, &r)
				ok = true
			}
		}
		return nil
	})
	return r, ok
}

// removals runs the countdown of one server.
type removals struct {
	srv   *server.Server
	log   *slog.Logger
	grace time.Duration

	mu   sync.Mutex // one count-down or change at a time
	last time.Time  // monotonic reading of the last count-down
	stop chan struct{}
	done chan struct{}
	once sync.Once // Shutdown may run twice (tests call it again)
}

func newRemovals(srv *server.Server, log *slog.Logger) *removals {
	r := &removals{srv: srv, log: log, grace: RemovalGrace, last: time.Now()}
	// However the account goes (here, or the admin API's delete), its
	// record goes with it: a new account of the same name later must not
	// inherit a disabled state and a deletion date.
	srv.OnAccountDeleted(func(user string) {
		if err := r.forget(user); err != nil {
			log.Error("removals: forget deleted account", "user", user, "err", err)
		}
	})
	return r
}

// start counts down at once (nothing taken off: finishes removals whose
// time ran out before a restart) and then every tick.
func (r *removals) start(tick time.Duration) {
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	r.mu.Lock()
	r.last = time.Now()
	r.mu.Unlock()
	if err := r.countDown(0); err != nil {
		r.log.Error("removals: count down", "err", err)
	}
	go func() {
		defer close(r.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				if err := r.tick(); err != nil {
					r.log.Error("removals: count down", "err", err)
				}
			}
		}
	}()
}

// close stops the countdown (before storage closes).
func (r *removals) close() {
	if r == nil || r.stop == nil {
		return
	}
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

// tick takes off the time since the last count-down, measured on the
// monotonic clock (immune to wall-clock jumps).
func (r *removals) tick() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	elapsed := now.Sub(r.last)
	r.last = now
	return r.countDownLocked(elapsed)
}

// countDown takes elapsed off every pending removal and deletes the
// accounts whose grace ran out.
func (r *removals) countDown(elapsed time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countDownLocked(elapsed)
}

func (r *removals) countDownLocked(elapsed time.Duration) error {
	// Nearly always nobody is being removed: no write (and no fsync on
	// the SD card) every hour for nothing.
	none := true
	r.srv.Store.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRemovals); b != nil {
			k, _ := b.Cursor().First()
			none = k == nil
		}
		return nil
	})
	if none {
		return nil
	}
	var due []string
	err := r.srv.Store.Update(func(tx *bolt.Tx) error {
		due = nil
		b := tx.Bucket(bucketRemovals)
		if b == nil {
			return nil
		}
		type upd struct {
			k []byte
			v []byte
		}
		var ups []upd
		err := b.ForEach(func(k, v []byte) error {
			var rec removal
			if err := json.Unmarshal(v, &rec); err != nil {
				rec.Left = r.grace // unreadable: start again rather than delete
			}
			rec.Left -= elapsed
			if rec.Left <= 0 {
				due = append(due, string(k))
				return nil
			}
			nv, _ := json.Marshal(rec)
			ups = append(ups, upd{append([]byte(nil), k...), nv})
			return nil
		})
		if err != nil {
			return err
		}
		for _, u := range ups {
			if err := b.Put(u.k, u.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, user := range due {
		// The account first, the record after: a crash in between leaves
		// a record of a deleted account, dropped on the next count.
		if err := r.srv.DeleteAccount(user); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete %s: %w", user, err))
			continue
		}
		if err := r.forget(user); err != nil {
			errs = append(errs, err)
			continue
		}
		r.log.Info("removed member deleted for good", "user", user)
	}
	return errors.Join(errs...)
}

func (r *removals) forget(user string) error {
	return r.srv.Store.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRemovals); b != nil {
			return b.Delete([]byte(user))
		}
		return nil
	})
}

// remove disables user now and starts the grace period.
func (r *removals) remove(user, by string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.srv.Store.Account(user); err != nil {
		return err
	}
	// The next tick takes off everything since the last one, part of it
	// from before this removal: credited here, so the deletion never
	// comes early (TestRemovalCountdownRuns caught it a tick early).
	v, _ := json.Marshal(removal{Since: time.Now().UTC(), Left: r.grace + time.Since(r.last), By: by})
	err := r.srv.Store.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRemovals)
		if err != nil {
			return err
		}
		if b.Get([]byte(user)) != nil {
			return nil // already being removed: keep its clock
		}
		return b.Put([]byte(user), v)
	})
	if err != nil {
		return err
	}
	// Logins are refused from now on (LoginAllowed reads the record);
	// devices connected now are closed, hibernating ones too.
	endSessions(r.srv, user, "account disabled by an admin")
	return nil
}

// endSessions ends every session of user and returns how many: connected
// ones are closed with a not-authorized stream error, which is "on
// purpose" and so does not hibernate; ones already hibernating (XEP-0198)
// would otherwise wait out their resumption window — CloseWithError does
// nothing to a session without a connection — and are ended here.
func endSessions(srv *server.Server, user, why string) int {
	n := 0
	for _, sess := range srv.Router.Sessions(user) {
		// The generation is read before Detached: a session resumed in
		// between has a new one, EndHibernated leaves it alone, and it
		// is closed below on its new connection like any other.
		gen := sess.Gen()
		if sess.Detached() && srv.EndHibernated(sess, gen) {
			n++
			continue
		}
		sess.CloseWithError("not-authorized", why)
		n++
	}
	return n
}

// undo ends a pending removal.
func (r *removals) undo(user string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := removing(r.srv.Store, user); !ok {
		return store.ErrNotFound
	}
	return r.forget(user)
}
