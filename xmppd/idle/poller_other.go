//go:build !linux

package idle

import "errors"

// Poller is only implemented on Linux (the appliance); elsewhere callers keep
// a goroutine per connection.
type Poller struct{}

// NewPoller reports that parking is unavailable.
func NewPoller() (*Poller, error) { return nil, errors.New("idle: no poller on this system") }

// Park is never called without a poller.
func (p *Poller) Park(c *Conn, wake func()) error { return errors.New("idle: unsupported") }

// Forget does nothing.
func (p *Poller) Forget(c *Conn) func() { return nil }
