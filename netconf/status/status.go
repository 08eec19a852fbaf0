// Package status is netconf's one model of "can people reach this box?".
//
// Every part of netconf (mDNS, UPnP, certificates, DNS records, tor, the
// self-test) reports into one Report as a list of Checks. Each Check says in
// plain words what is true and, when something is wrong, what the person
// should do about it. The setup and health pages render the same JSON that
// `netconf status` prints, so there is exactly one wording.
package status

import (
	"encoding/json"
	"sort"
	"sync"
	"time"
)

// Level is how a check turned out.
type Level string

const (
	OK      Level = "ok"      // works
	Warn    Level = "warn"    // works partly, or works but needs attention soon
	Error   Level = "error"   // does not work; Action says what to do
	Off     Level = "off"     // not enabled; nothing to do unless wanted
	Pending Level = "pending" // being checked or set up right now
)

// Check is one line of the diagnostics page.
type Check struct {
	// ID is stable and machine-readable: "lan", "mdns", "router",
	// "mapping/tcp/5222", "external", "dns/_xmpp-client._tcp", "cert",
	// "onion", "selftest". Pages and tests key on it.
	ID string `json:"id"`
	// Title names the thing in plain words: "Name on the home network".
	Title string `json:"title"`
	Level Level  `json:"level"`
	// Message says what is true now, in words a club member understands.
	Message string `json:"message"`
	// Action says what to do when Level is Warn or Error; empty otherwise.
	Action string `json:"action,omitempty"`
	// Detail carries facts for the pages and tests (addresses, lease
	// seconds, expiry dates); never needed to understand Message.
	Detail map[string]string `json:"detail,omitempty"`
	// Updated is when this check last changed or was confirmed.
	Updated time.Time `json:"updated"`
}

// Report is the whole model at one moment.
type Report struct {
	Checks  []Check   `json:"checks"`
	Updated time.Time `json:"updated"`
}

// Get returns the check with the given ID.
func (r Report) Get(id string) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// Worst is the most serious level in the report: what a single traffic
// light on the home page shows.
func (r Report) Worst() Level {
	worst := OK
	for _, c := range r.Checks {
		if rank(c.Level) > rank(worst) {
			worst = c.Level
		}
	}
	return worst
}

func rank(l Level) int {
	switch l {
	case Error:
		return 3
	case Warn:
		return 2
	case Pending:
		return 1
	}
	return 0
}

// Board collects checks from the parts of netconf, which run concurrently.
// The zero value is ready to use.
type Board struct {
	mu     sync.Mutex
	checks map[string]Check
	notify func(Report)
	now    func() time.Time
}

// OnChange registers f to be called (outside the lock) after every change,
// e.g. to rewrite the status file. Only one callback is kept.
func (b *Board) OnChange(f func(Report)) {
	b.mu.Lock()
	b.notify = f
	b.mu.Unlock()
}

// Set records c, replacing any check with the same ID. Updated is filled in
// when zero.
func (b *Board) Set(c Check) {
	b.mu.Lock()
	if b.checks == nil {
		b.checks = make(map[string]Check)
	}
	if c.Updated.IsZero() {
		c.Updated = b.clock()
	}
	b.checks[c.ID] = c
	f := b.notify
	b.mu.Unlock()
	if f != nil {
		f(b.Report())
	}
}

// Remove deletes the check with the given ID (a mapping that was removed,
// say). Removing an unknown ID does nothing.
func (b *Board) Remove(id string) {
	b.mu.Lock()
	_, had := b.checks[id]
	delete(b.checks, id)
	f := b.notify
	b.mu.Unlock()
	if had && f != nil {
		f(b.Report())
	}
}

// RemovePrefix deletes every check whose ID starts with prefix.
func (b *Board) RemovePrefix(prefix string) {
	b.mu.Lock()
	n := 0
	for id := range b.checks {
		if len(id) >= len(prefix) && id[:len(prefix)] == prefix {
			delete(b.checks, id)
			n++
		}
	}
	f := b.notify
	b.mu.Unlock()
	if n > 0 && f != nil {
		f(b.Report())
	}
}

// Report returns a snapshot sorted by ID.
func (b *Board) Report() Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := Report{Updated: b.clock()}
	for _, c := range b.checks {
		r.Checks = append(r.Checks, c)
		if c.Updated.After(r.Updated) {
			r.Updated = c.Updated
		}
	}
	sort.Slice(r.Checks, func(i, j int) bool { return r.Checks[i].ID < r.Checks[j].ID })
	return r
}

func (b *Board) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now().UTC().Truncate(time.Second)
}

// JSON is the one encoding of a report, for the status file, the admin API
// and `netconf status` alike.
func (r Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// Reporter is what each part of netconf gets: a place to put its checks.
type Reporter interface {
	Set(Check)
	Remove(id string)
	RemovePrefix(prefix string)
}
