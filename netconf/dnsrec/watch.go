package dnsrec

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/netconf/status"
)

// Watch checks the records every interval until ctx ends and reports each
// result into rep. records is asked each round, so a new home address or
// domain shows up without a restart; checks of records no longer wanted
// are removed. It returns nil when ctx ends.
func Watch(ctx context.Context, resolver string, records func() []Record, rep status.Reporter, interval time.Duration) error {
	shown := map[string]bool{}
	for {
		rs := records()
		res := Check(ctx, resolver, rs)
		if ctx.Err() != nil {
			return nil
		}
		now := map[string]bool{}
		for _, r := range res {
			rep.Set(r.Check())
			now[r.Record.ID()] = true
		}
		for id := range shown {
			if !now[id] {
				rep.Remove(id)
			}
		}
		shown = now
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// SystemResolver is the first name server in /etc/resolv.conf as
// "host:port", for Check and Watch.
func SystemResolver() (string, error) {
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return "", fmt.Errorf("dnsrec: %w", err)
	}
	if len(cc.Servers) == 0 {
		return "", fmt.Errorf("dnsrec: no name server in /etc/resolv.conf")
	}
	return net.JoinHostPort(cc.Servers[0], cc.Port), nil
}
