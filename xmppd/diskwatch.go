package xmppd

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hearthchat/hearth/appliance/diskuse"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// diskWatch samples how full the storage is and how much is written to it
// (appliance/diskuse), hourly, for the health page's forecast, and tells
// the admins in a chat message when the storage is about to fill: nobody
// looks at a health page until something is wrong, and a full card is
// what stops the chat.
type diskWatch struct {
	mu       sync.Mutex
	w        *diskuse.Watcher
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// diskSampleEvery is the sampling period: hourly, as the clock saver,
// so the box does not wake more often for this.
const diskSampleEvery = time.Hour

func (d *Daemon) startDiskWatch() {
	dw := &diskWatch{
		w:    diskuse.New(string(d.opts.State), filepath.Join(d.opts.State.Status(), "diskuse.json")),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	d.disk = dw
	go func() {
		defer close(dw.done)
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-dw.stop:
				return
			case <-t.C:
			}
			d.sampleDisk()
			t.Reset(diskSampleEvery)
		}
	}()
}

func (d *Daemon) sampleDisk() {
	dw := d.disk
	dw.mu.Lock()
	err := dw.w.Sample(time.Now())
	msg := ""
	if err == nil {
		msg = dw.w.DueWarning(time.Now())
	}
	dw.mu.Unlock()
	if err != nil {
		d.opts.Log.Warn("storage use not sampled", "err", err)
		return
	}
	if msg != "" {
		d.tellAdmins(msg + " (Health page: /admin/health)")
	}
}

// stopDiskWatch ends the sampler; Shutdown may run more than once (tests
// stop a daemon and their cleanup stops it again).
func (d *Daemon) stopDiskWatch() {
	if d.disk != nil {
		d.disk.stopOnce.Do(func() { close(d.disk.stop) })
		<-d.disk.done
	}
}

// diskReport is the latest forecast (zero before the first sample).
func (d *Daemon) diskReport() diskuse.Report {
	if d.disk == nil {
		return diskuse.Report{}
	}
	d.disk.mu.Lock()
	defer d.disk.mu.Unlock()
	return d.disk.w.Report()
}

// tellAdmins sends text from the box to every admin, online or not.
func (d *Daemon) tellAdmins(text string) {
	users, err := people(d.Store)
	if err != nil {
		d.opts.Log.Warn("admins not told", "err", err, "text", text)
		return
	}
	id := make([]byte, 8)
	rand.Read(id)
	for _, u := range users {
		if acc, err := d.Store.Account(u); err != nil || !acc.Admin {
			continue
		}
		el := stream.New(stream.NSClient, "message", "from", d.Server.Domain, "to", u+"@"+d.Server.Domain,
			"type", "chat", "id", "box-"+hex.EncodeToString(id)).
			Add(stream.New(stream.NSClient, "body").AddText(strings.TrimSpace(text)))
		if err := d.Server.RouteReport(el); err != nil {
			d.opts.Log.Warn("admin not told", "user", u, "err", err)
		}
	}
}
