// Command updater is Hearth's update agent on the box (see appliance/update):
// it settles a trial boot (commit once xmppd is healthy, otherwise roll
// back), then polls the signed feed daily and on demand.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"github.com/hearthchat/hearth/appliance/clock"
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/appliance/update"
	"github.com/hearthchat/hearth/appliance/version"
)

func main() {
	var (
		stateDir = flag.String("state", state.DefaultDir, "state directory")
		rootPath = flag.String("trusted-root", "/etc/hearth/update-root.json", "TUF root metadata baked into the image")
		showVer  = flag.Bool("version", false, "print the version and exit")
		feedFile = flag.String("feed-url-file", config.BakedFeedFile, "the update feed URL baked into the image, used when the config names none")
	)
	flag.Parse()
	if *showVer {
		fmt.Println(version.Version)
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// Raise the battery-less clock before judging metadata expiry (gokrazy
	// starts the programs in no fixed order; see appliance/clock).
	clock.Boot(state.Dir(*stateDir).Clock(), log)
	if err := run(log, state.Dir(*stateDir), *rootPath, *feedFile); err != nil {
		log.Error("updater", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, st state.Dir, rootPath, feedFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	root, err := os.ReadFile(rootPath)
	if err != nil {
		return fmt.Errorf("trusted root: %w", err)
	}
	// Release numbers are what the image build stamps as the version; a dev
	// build ("dev") is release 0 and takes any release from its feed.
	release, _ := strconv.Atoi(version.Version)
	a := &update.Agent{
		State: st,
		Client: &update.Client{
			Dir:         st.Update(),
			TrustedRoot: root,
			Arch:        runtime.GOARCH,
			Running:     release,
		},
		Gokrazy: &update.Gokrazy{},
		Boot:    &update.BootConfig{},
		Health:  update.XmppdHealth(st.AdminSocket(), version.Version),
		Version: version.Version,
		Release: release,
		Log:     log,
	}
	if kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		a.Console = kmsg
		fmt.Fprintf(kmsg, "<5>hearth-updater: started: version %s (release %d)\n", version.Version, release)
	}
	log.Info("updater started", "version", version.Version, "release", release)
	return a.Run(ctx, func() (config.Update, error) {
		c, err := config.Load(st.Config())
		if err != nil {
			return config.Update{}, err
		}
		// A fresh box has no feed_url in its config: the release
		// channel's, baked into the image, is the default.
		c.Update.FeedURL = c.Update.Feed(feedFile)
		return c.Update, nil
	})
}
