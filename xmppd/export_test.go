package xmppd

import "context"

// LoginCheck is the health check's login (tests).
func (d *Daemon) LoginCheck(ctx context.Context) error { return d.loginCheck(ctx) }
