// Package wait holds the one timing helper netconf's parts share.
package wait

import (
	"context"
	"time"
)

// Sleep waits d, or less when ctx ends first; it reports whether the whole
// d passed (false: the caller should stop). Parts retry and renew on long
// timers, and must stop at once on shutdown or reload.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
