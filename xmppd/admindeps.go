package xmppd

// The adapters through which the admin pages (setup-ui/admin*.go) reach
// members, circles, announcements, the box's health and the update agent.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/hearthchat/hearth/appliance/config"
	setupui "github.com/hearthchat/hearth/setup-ui"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// processStart is when this xmppd started (the health page's "chat
// service running for").
var processStart = time.Now()

func (d *Daemon) adminDeps() setupui.Admin {
	return setupui.Admin{
		Members:  webMembers{d},
		Circles:  webCircles{d.Server},
		Devices:  webDevices{webMembers{d}},
		Announce: d.announce,
		Health:   d.health,
		Updates:  d.updateStatus,
		CheckNow: d.updateCheck,
		// The federation page (federationdeps.go).
		Federation: d.applyFederation,
		Retention:  d.applyRetention, // retention.go
		Move:       d.move,           // webmoving.go
		// Account data as XEP-0227 files (webportable.go).
		Export:       d.exportData,
		Import:       d.importData,
		JoinWithData: d.joinWithData,
	}
}

// people are the accounts people use: not the box's own ("_health").
func people(st *store.Store) ([]string, error) {
	users, err := st.Users()
	return slices.DeleteFunc(users, func(u string) bool { return strings.HasPrefix(u, "_") }), err
}

type webMembers struct{ d *Daemon }

func (m webMembers) List() ([]setupui.Member, error) {
	srv := m.d.Server
	users, err := people(srv.Store)
	if err != nil {
		return nil, err
	}
	out := make([]setupui.Member, 0, len(users))
	for _, u := range users {
		acc, err := srv.Store.Account(u)
		if err != nil {
			continue // deleted meanwhile
		}
		x := setupui.Member{User: u, Role: setupui.Role(invites.Role(srv.Store, u)), Created: acc.Created}
		x.Online = len(srv.Router.Sessions(u)) > 0
		x.LastSeen, _ = srv.LastSeenOf(u)
		if rec, ok := removing(srv.Store, u); ok {
			x.Removing, x.DeleteAt = true, time.Now().Add(rec.Left)
		}
		out = append(out, x)
	}
	return out, nil
}

func (m webMembers) exists(user string) error {
	if strings.HasPrefix(user, "_") {
		return setupui.ErrNoMember
	}
	if _, err := m.d.Store.Account(user); errors.Is(err, store.ErrNotFound) {
		return setupui.ErrNoMember
	} else if err != nil {
		return err
	}
	return nil
}

func (m webMembers) SetRole(user string, r setupui.Role) error {
	if err := m.exists(user); err != nil {
		return err
	}
	if err := m.d.Store.SetAdmin(user, r == setupui.RoleAdmin); err != nil {
		return err
	}
	return invites.SetRole(m.d.Store, user, string(r))
}

func (m webMembers) Remove(user string) error {
	if err := m.exists(user); err != nil {
		return err
	}
	return m.d.removals.remove(user, "")
}

func (m webMembers) Undo(user string) error {
	if err := m.d.removals.undo(user); errors.Is(err, store.ErrNotFound) {
		return setupui.ErrNoMember
	} else {
		return err
	}
}

// webDevices are a member's apps as SASL2 recorded them (store/fast.go).
type webDevices struct{ m webMembers }

func (w webDevices) List(user string) ([]setupui.Device, error) {
	if err := w.m.exists(user); err != nil {
		return nil, err
	}
	list, err := w.m.d.Store.Devices(user)
	if err != nil {
		return nil, err
	}
	out := make([]setupui.Device, 0, len(list))
	for _, x := range list {
		out = append(out, setupui.Device{ID: x.ID, Software: x.Software, Device: x.Device, Created: x.Created, LastUsed: x.LastUsed, TokenExpiry: x.TokenExpiry})
	}
	return out, nil
}

// SignOutAll ends user's FAST tokens first (committed), then every
// session, hibernating ones included (endSessions). The password stays: an
// app that saved it logs in again (the page says so).
func (w webDevices) SignOutAll(user string) (int, error) {
	if err := w.m.exists(user); err != nil {
		return 0, err
	}
	srv := w.m.d.Server
	if err := srv.Store.RevokeAllFAST(user); err != nil {
		return 0, fmt.Errorf("revoke fast tokens of %s: %w", user, err)
	}
	return endSessions(srv, user, "signed out by an admin"), nil
}

// Circles are kept in xmppd's own bucket: name → members (JSON). The
// contact lists are the roster's, changed through server.Contacts.
// A circle's group chat is a members-only room whose members Create,
// Add, Leave and Delete keep in step (circlerooms.go).
var bucketCircles = []byte("circles")

type webCircles struct{ srv *server.Server }

func (c webCircles) List() ([]setupui.Circle, error) {
	var out []setupui.Circle
	err := c.srv.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCircles)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			ci := setupui.Circle{Name: string(k)}
			json.Unmarshal(v, &ci.Members)
			out = append(out, ci)
			return nil
		})
	})
	return out, err
}

func (c webCircles) change(name string, f func(b *bolt.Bucket, members []string) error) error {
	return c.srv.Store.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCircles)
		if err != nil {
			return err
		}
		v := b.Get([]byte(name))
		if v == nil {
			return errors.New("there is no such circle")
		}
		var members []string
		json.Unmarshal(v, &members)
		return f(b, members)
	})
}

func (c webCircles) Create(name string) error {
	if err := c.srv.Store.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCircles)
		if err != nil {
			return err
		}
		if b.Get([]byte(name)) != nil {
			return errors.New("a circle with that name exists already")
		}
		if b.Stats().KeyN >= 100 {
			return errors.New("the box keeps at most 100 circles")
		}
		return b.Put([]byte(name), []byte("[]"))
	}); err != nil {
		return err
	}
	return circleRoomAdd(c.srv, name, "")
}

func (c webCircles) Delete(name string) error {
	if err := c.change(name, func(b *bolt.Bucket, _ []string) error { return b.Delete([]byte(name)) }); err != nil {
		return err
	}
	return circleRoomDelete(c.srv, name)
}

// Add befriends user with everyone in the circle first (outside the
// circles transaction: the roster writes its own), then records them.
func (c webCircles) Add(name, user string) error {
	if _, err := c.srv.Store.Account(user); err != nil || strings.HasPrefix(user, "_") {
		return errors.New("there is no such member")
	}
	list, err := c.List()
	if err != nil {
		return err
	}
	var members []string
	found := false
	for _, ci := range list {
		if ci.Name == name {
			members, found = ci.Members, true
		}
	}
	if !found {
		return errors.New("there is no such circle")
	}
	if err := circleRoomAdd(c.srv, name, user); err != nil { // circlerooms.go
		return fmt.Errorf("%s could not join the circle's group chat (%v)", user, err)
	}
	if slices.Contains(members, user) {
		return nil
	}
	for _, other := range members {
		if err := c.srv.Contacts().Befriend(user, other, name); err != nil {
			return fmt.Errorf("%s and %s could not become contacts (%v)", user, other, err)
		}
		// Online now: each sees the other online at once, not only after
		// their next change of status.
		c.sharePresence(user, other)
		c.sharePresence(other, user)
	}
	return c.change(name, func(b *bolt.Bucket, cur []string) error {
		if slices.Contains(cur, user) {
			return nil
		}
		v, _ := json.Marshal(append(cur, user))
		return b.Put([]byte(name), v)
	})
}

// sharePresence sends the current presence of each of from's available
// devices to to (now a contact with a subscription), as the server does
// when a subscription is approved.
func (c webCircles) sharePresence(from, to string) {
	all, _ := c.srv.Router.Available(from)
	for _, sess := range all {
		p, avail, _ := sess.Presence()
		if p == nil || !avail {
			continue
		}
		el := p.Copy()
		el.Set("from", sess.JID.String())
		el.Set("to", to+"@"+c.srv.Domain)
		c.srv.Route(el)
	}
}

func (c webCircles) Leave(name, user string) error {
	if err := c.change(name, func(b *bolt.Bucket, cur []string) error {
		v, _ := json.Marshal(slices.DeleteFunc(cur, func(u string) bool { return u == user }))
		return b.Put([]byte(name), v)
	}); err != nil {
		return err
	}
	return circleRoomLeave(c.srv, name, user)
}

// forget takes a deleted account out of every circle.
func (c webCircles) forget(user string) {
	list, err := c.List()
	if err != nil {
		return
	}
	for _, ci := range list {
		if slices.Contains(ci.Members, user) {
			c.Leave(ci.Name, user)
		}
	}
}

// announce sends text from the domain to every member not being removed:
// delivered to devices online, stored offline for the others. Offline
// storage does not hold the box to a sender's share (mod/offline), so an
// announcement is refused only when a member's whole storage is full;
// RouteReport tells us, where Route would have bounced it to nobody.
func (d *Daemon) announce(text string) (setupui.AnnounceResult, error) {
	var res setupui.AnnounceResult
	users, err := people(d.Store)
	if err != nil {
		return res, err
	}
	id := make([]byte, 8)
	rand.Read(id)
	for _, u := range users {
		if _, ok := removing(d.Store, u); ok {
			continue
		}
		el := stream.New(stream.NSClient, "message", "from", d.Server.Domain, "to", u+"@"+d.Server.Domain,
			"type", "chat", "id", "announce-"+hex.EncodeToString(id)).
			Add(stream.New(stream.NSClient, "body").AddText(text))
		online, _ := d.Server.Router.Available(u)
		if err := d.Server.RouteReport(el); err != nil {
			d.opts.Log.Warn("announcement refused", "user", u, "err", err)
			res.Failed = append(res.Failed, u)
			continue
		}
		if len(online) > 0 {
			res.Delivered++
		} else {
			res.Stored++
		}
	}
	return res, nil
}

// health gathers the health page's figures; what cannot be read is named
// in Problems.
func (d *Daemon) health(ctx context.Context) setupui.Health {
	h := setupui.Health{ChatUp: time.Since(processStart), Devices: d.Server.Router.Count(), Disk: d.diskReport(), Backup: webBackup{d}.Nightly()}
	var fs unix.Statfs_t
	if err := unix.Statfs(string(d.opts.State), &fs); err == nil {
		h.StorageTotal = fs.Blocks * uint64(fs.Bsize)
		h.StorageFree = fs.Bavail * uint64(fs.Bsize)
	} else {
		h.Problems = append(h.Problems, "The box could not read how full its storage is.")
	}
	if fi, err := os.Stat(d.opts.State.DB()); err == nil {
		h.Database = fi.Size()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch k {
			case "MemTotal":
				h.MemTotal = n << 10
			case "MemAvailable":
				h.MemAvailable = n << 10
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			h.MemChat = pages * uint64(os.Getpagesize())
		}
	}
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) == nil {
		h.BoxUp = time.Duration(ts.Nano())
	}
	if certs := d.certsReady.Load(); certs != nil {
		if c, err := certs.Get(nil); err == nil && c != nil && len(c.Certificate) > 0 {
			if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil {
				h.CertExpires = leaf.NotAfter
				h.CertPublic = d.publicCert()
			}
		}
	}
	return h
}

// The update agent (cmd/updater, appliance/update) answers on its socket
// (GET /status, POST /check) and also writes its status to
// STATE/status/update.json, read when the socket does not answer.

func (d *Daemon) updateSocket() string { return filepath.Join(d.opts.State.Update(), "agent.sock") }

func (d *Daemon) updateClient() *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.updateSocket())
		}}}
}

// agentStatus is the part of appliance/update.Status the page shows.
type agentStatus struct {
	Version   string    `json:"version"`
	State     string    `json:"state"`
	Message   string    `json:"message"`
	LastCheck time.Time `json:"last_check"`
	Available *struct {
		Release int `json:"release"`
	} `json:"available"`
	LastResult string `json:"last_result"`
}

func (d *Daemon) updateStatus(ctx context.Context) setupui.UpdateStatus {
	var st agentStatus
	known := false
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://updater/status", nil)
	if resp, err := d.updateClient().Do(req); err == nil {
		known = resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil
		resp.Body.Close()
	}
	if !known {
		if b, err := os.ReadFile(filepath.Join(d.opts.State.Status(), "update.json")); err == nil {
			known = json.Unmarshal(b, &st) == nil
		}
	}
	u := setupui.UpdateStatus{Known: known, Running: st.Version, State: st.State, Message: st.Message, LastCheck: st.LastCheck, Result: st.LastResult}
	if st.Available != nil {
		u.Offered = st.Available.Release
	}
	if c, err := config.Load(d.opts.State.Config()); err == nil {
		u.FeedURL = c.Update.Feed(config.BakedFeedFile)
	}
	return u
}

func (d *Daemon) updateCheck(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://updater/check", nil)
	resp, err := d.updateClient().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("update agent: %s", resp.Status)
	}
	return nil
}
