package config

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Update is the update agent's section.
type Update struct {
	// Auto lets the agent install updates without asking.
	Auto bool `json:"auto"`
	// FeedURL is the update feed: a static directory (metadata/ and
	// targets/) over http(s):// or file:// (a USB stick). Empty: the agent
	// only reports that no feed is configured.
	FeedURL string `json:"feed_url,omitempty"`
	// CheckEvery is how often the agent polls the feed, as a Go duration
	// ("24h"). Empty means daily.
	CheckEvery string `json:"check_every,omitempty"`
	// Window restricts installing (not checking or downloading) to a daily
	// time range in local time, "HH:MM-HH:MM" (may wrap midnight, e.g.
	// "02:00-05:00" for "only at night"). Empty: any time.
	Window string `json:"window,omitempty"`
	// HealthTimeout is how long a new version gets to pass the health gate
	// on its trial boot before the agent rolls back ("3m" if empty).
	HealthTimeout string `json:"health_timeout,omitempty"`
}

// BakedFeedFile is where an image carries its release channel's feed URL
// (make image FEED_URL=…), beside the update root of trust. A fresh box has
// no feed_url in its config; without this file it would never update.
const BakedFeedFile = "/etc/hearth/update-feed-url"

// Feed is the feed to use: FeedURL when set, else the URL in the file
// baked (BakedFeedFile); "" when neither says one.
func (u Update) Feed(baked string) string {
	if u.FeedURL != "" {
		return u.FeedURL
	}
	b, err := os.ReadFile(baked)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// DefaultUpdate is the update section of a fresh box.
func DefaultUpdate() Update { return Update{Auto: true} }

// CheckInterval is CheckEvery parsed, with its default.
func (u Update) CheckInterval() (time.Duration, error) {
	return durationOr(u.CheckEvery, 24*time.Hour, "check_every")
}

// HealthDeadline is HealthTimeout parsed, with its default.
func (u Update) HealthDeadline() (time.Duration, error) {
	return durationOr(u.HealthTimeout, 3*time.Minute, "health_timeout")
}

func durationOr(s string, def time.Duration, field string) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("config: update.%s %q: want a positive duration like \"24h\"", field, s)
	}
	return d, nil
}

// InWindow reports whether t falls in the update window. An empty window
// is always open; a malformed one is an error (and the agent then waits,
// rather than installing at an hour the admin did not choose).
func (u Update) InWindow(t time.Time) (bool, error) {
	d, err := u.UntilWindow(t)
	return err == nil && d == 0, err
}

// UntilWindow is how long after t the update window next opens: zero when
// t is inside it (or there is no window).
func (u Update) UntilWindow(t time.Time) (time.Duration, error) {
	if u.Window == "" {
		return 0, nil
	}
	var h1, m1, h2, m2 int
	if n, err := fmt.Sscanf(u.Window, "%d:%d-%d:%d", &h1, &m1, &h2, &m2); err != nil || n != 4 ||
		h1 < 0 || h1 > 23 || h2 < 0 || h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59 {
		return 0, fmt.Errorf("config: update.window %q: want \"HH:MM-HH:MM\"", u.Window)
	}
	start, end := h1*60+m1, h2*60+m2
	now := t.Hour()*60 + t.Minute()
	in := now >= start && now < end
	if start > end { // wraps midnight
		in = now >= start || now < end
	}
	if in {
		return 0, nil
	}
	// The next start in local time; Date normalises a day past the end of
	// the month and a DST shift.
	y, mo, d := t.Date()
	next := time.Date(y, mo, d, h1, m1, 0, 0, t.Location())
	if !next.After(t) {
		next = time.Date(y, mo, d+1, h1, m1, 0, 0, t.Location())
	}
	return next.Sub(t), nil
}
