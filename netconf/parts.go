package netconf

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/onion"
	"github.com/hearthchat/hearth/netconf/status"
)

// partsFor is the one place that decides which parts run for a config.
func (s *Service) partsFor(cfg *config.Config) []part {
	ps := []part{
		{"lan", func(ctx context.Context) error { return watchLAN(ctx, &s.board) }},
		{"selftest", func(ctx context.Context) error { return s.selfTestLoop(ctx, cfg, 30*time.Second) }},
	}
	if cfg.Net.Tor {
		ps = append(ps, s.onionPart())
	} else {
		onion.Disabled(&s.board)
	}
	return ps
}

// onionPart publishes the chat server as an onion service. tor forwards to
// xmppd's onion socket, whose connections are never treated as local.
func (s *Service) onionPart() part {
	svc, err := onion.New(onion.Options{
		DataDir:        s.opts.State.Tor(),
		Reporter:       &s.board,
		Log:            os.Stderr, // tor's own lines, in the box's log
		DisableNetwork: s.opts.TorOffline,
		Ports:          []onion.Port{{Virtual: s.opts.Ports.C2S, Target: "unix:" + s.opts.State.OnionC2S()}},
	})
	if err != nil {
		return part{"onion", func(context.Context) error {
			s.board.Set(status.Check{ID: "onion", Title: "Tor", Level: status.Error,
				Message: "Tor could not be set up on this box.",
				Action:  "Turn Tor off and on again in the settings; if this stays, restore a backup.",
				Detail:  map[string]string{"error": err.Error()}})
			return fmt.Errorf("onion: %w", err)
		}}
	}
	return part{"onion", svc.Run}
}

// FactoryReset removes what netconf put outside the box (the router's port
// mappings) before the state directory is wiped.
func (s *Service) FactoryReset(ctx context.Context) error {
	return nil
}
