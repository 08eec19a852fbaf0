package turn

import (
	"net"
	"strings"
	"sync"
	"time"
)

// quota caps live allocations per account and per client IP address, so
// that one member (or one credential copied to a script) cannot take the
// whole small relay range from the others: the 11th allocation from one
// client gets 486 Allocation Quota Reached while another member still
// gets one.
//
// pion asks QuotaHandler before it creates an allocation and tells the
// event handler after; requests on different TCP connections are handled
// concurrently, so a check against created allocations alone would let a
// parallel flood through. An admitted request therefore holds a
// reservation until its allocation is created; a reservation whose
// allocation never came (no free port) lapses after reserveFor.
type quota struct {
	perUser, perIP int

	mu      sync.Mutex
	users   map[string]*count
	ips     map[string]*count
	nowFunc func() time.Time
}

type count struct {
	live    int
	pending []time.Time // reservations not yet turned into allocations
}

const reserveFor = 5 * time.Second

func newQuota(perUser, perIP int) *quota {
	return &quota{perUser: perUser, perIP: perIP, users: map[string]*count{}, ips: map[string]*count{}, nowFunc: time.Now}
}

// account is the account part of a REST username ("expiry:account").
func account(username string) string {
	_, a, _ := strings.Cut(username, ":")
	return a
}

func ipOf(a net.Addr) string {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.IP.String()
	case *net.TCPAddr:
		return a.IP.String()
	}
	host, _, _ := net.SplitHostPort(a.String())
	return host
}

func (c *count) used(now time.Time) int {
	keep := c.pending[:0]
	for _, t := range c.pending {
		if now.Sub(t) < reserveFor {
			keep = append(keep, t)
		}
	}
	c.pending = keep
	return c.live + len(c.pending)
}

func get(m map[string]*count, k string) *count {
	c := m[k]
	if c == nil {
		c = &count{}
		m[k] = c
	}
	return c
}

// admit is pion's QuotaHandler.
func (q *quota) admit(username, _ string, src net.Addr) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.nowFunc()
	u, ip := get(q.users, account(username)), get(q.ips, ipOf(src))
	if u.used(now) >= q.perUser || ip.used(now) >= q.perIP {
		q.drop(account(username), ipOf(src))
		return false
	}
	u.pending = append(u.pending, now)
	ip.pending = append(ip.pending, now)
	return true
}

func (q *quota) created(src net.Addr, username string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range []*count{get(q.users, account(username)), get(q.ips, ipOf(src))} {
		if len(c.pending) > 0 {
			c.pending = c.pending[1:]
		}
		c.live++
	}
}

func (q *quota) deleted(src net.Addr, username string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range []*count{get(q.users, account(username)), get(q.ips, ipOf(src))} {
		if c.live > 0 {
			c.live--
		}
	}
	q.drop(account(username), ipOf(src))
}

// drop forgets empty counters, so the maps hold only clients with
// allocations (a scan of many source addresses leaves nothing behind).
func (q *quota) drop(user, ip string) {
	if c := q.users[user]; c != nil && c.live == 0 && len(c.pending) == 0 {
		delete(q.users, user)
	}
	if c := q.ips[ip]; c != nil && c.live == 0 && len(c.pending) == 0 {
		delete(q.ips, ip)
	}
}

// size is the number of tracked accounts and addresses (tests).
func (q *quota) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.users) + len(q.ips)
}
