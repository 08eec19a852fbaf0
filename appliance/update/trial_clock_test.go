package update

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A Pi has no battery clock: NTP often sets it while a release is on trial.
// The trial record below is what this boot's agent wrote a second ago, at
// the clock it had then; since then the wall clock jumped by 300 days. The
// health gate's deadline must not move with it.
func TestTrialDeadlineSurvivesClockJump(t *testing.T) {
	cases := []struct {
		name    string
		jump    time.Duration // how far the wall clock moved since the record
		healthy int           // health checks that fail before one passes (-1: never)
		timeout time.Duration
		wantRes string
	}{
		// On the wall clock the deadline passed 300 days ago: a healthy
		// release still starting up was rolled back at the first failure.
		{"forward: a slow but healthy release commits", 300 * 24 * time.Hour, 2, 30 * time.Second, "committed release 2"},
		// On the wall clock the deadline is 300 days away: a broken release
		// was kept until the next reboot.
		{"backward: a broken release is rolled back in time", -300 * 24 * time.Hour, -1, 3 * time.Second, "rolled back release 2: health gate failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake, g := startFakeGokrazy(t)
			boot := &BootConfig{Device: bootFAT(t)}
			a := newAgent(t, 2, g, boot, nil)
			var calls atomic.Int32
			a.Health = func(context.Context) error {
				if n := calls.Add(1); c.healthy < 0 || int(n) <= c.healthy {
					return errors.New("xmppd not up yet")
				}
				return nil
			}
			if err := a.saveTrial(&Trial{
				Release: 2, Version: "2", Installed: time.Now().Add(-c.jump - time.Minute),
				Booted: time.Now().Add(-c.jump - time.Second).UTC(), BootedUptime: uptime() - time.Second,
			}); err != nil {
				t.Fatal(err)
			}
			if err := boot.EnableTrial(); err != nil {
				t.Fatal(err)
			}
			gokrazyInit(t, boot)
			// Bounded: with the deadline on the wall clock the backward
			// case would wait 300 days.
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout+20*time.Second)
			defer cancel()
			if err := a.ResolveTrial(ctx, c.timeout); err != nil {
				t.Fatalf("ResolveTrial: %v (health checked %d times)", err, calls.Load())
			}
			if s := a.Status(); !strings.HasPrefix(s.LastResult, c.wantRes) {
				t.Errorf("last result = %q, want prefix %q (health checked %d times; gokrazy calls %s)", s.LastResult, c.wantRes, calls.Load(), fake.called())
			}
		})
	}
}
