// Command mkimage builds Hearth's firmware images (make image): the Pi image
// and the amd64 qemu image from the repository's gokrazy instance config,
// each with its own setup code on the boot partition and a formatted /perm
// (with -publish: no code; each box makes its own on first start).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hearthchat/hearth/appliance/update"
	"github.com/hearthchat/hearth/image"
)

func main() {
	var (
		repo     = flag.String("repo", ".", "repository (gokrazy instance dir)")
		out      = flag.String("out", "out", "output directory")
		work     = flag.String("work", ".cache/image", "scratch directory for derived instances")
		gok      = flag.String("gok", ".cache/bin/gok", "pinned gok binary (make builds it from tools/go.mod)")
		version  = flag.String("version", "dev", "firmware version stamped into the programs")
		targets  = flag.String("targets", "pi,vm", "comma-separated images to build: pi, vm")
		permSeed = flag.String("perm-seed", "", "directory whose files are copied into /perm (tests)")
		rootOnly = flag.Bool("root-only", false, "build only the root file systems (update payloads), not full images")
		quiet    = flag.Bool("q", false, "send gok's output to out/<target>.log instead of stderr")
		feed     = flag.String("feed", "", "with -root-only: publish the roots as a signed update feed in this directory")
		feedURL  = flag.String("feed-url", "", "the release channel's update feed URL, baked into the image and its update roots (keep it the same for a channel)")
		refresh  = flag.String("refresh-feed", "", "re-sign the feed in this directory with fresh expiries (same release; run daily) and exit")
		forPub   = flag.Bool("publish", false, "build images for publication: no setup code in them (each box makes its own on first start); fails if one would be")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("mkimage: ")
	if *refresh != "" {
		// Never make new keys here: they could not sign this feed anyway.
		dir := filepath.Join(*repo, "keys")
		if _, err := os.Stat(filepath.Join(dir, "root.json")); err != nil {
			log.Fatalf("refresh: no signing keys in %s (the feed's keys are made by the first make image or make release)", dir)
		}
		keys, err := update.LoadOrCreateKeys(dir)
		if err == nil {
			err = update.Refresh(*refresh, keys, time.Time{}, 0, 0)
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("re-signed %s: the timestamp is good for 7 days\n", *refresh)
		return
	}

	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	if *feed != "" {
		*rootOnly = true
	}
	roots := map[string]string{}
	b := &image.Builder{Repo: *repo, Gok: *gok, Version: *version, WorkDir: *work, Log: os.Stderr, Publish: *forPub, FeedURL: *feedURL}
	for _, name := range strings.Split(*targets, ",") {
		t, ok := map[string]image.Target{"pi": image.Pi, "vm": image.VM}[name]
		if !ok {
			log.Fatalf("unknown target %q", name)
		}
		if *quiet {
			f, err := os.Create(filepath.Join(*out, "hearth-"+t.Name+".log"))
			if err != nil {
				log.Fatal(err)
			}
			b.Log = f
			defer f.Close()
		}
		if *rootOnly {
			dest := filepath.Join(*out, "hearth-"+t.Name+".root.squashfs")
			if err := b.Root(t, dest); err != nil {
				log.Fatal(err)
			}
			fmt.Printf("built %s (version %s)\n", dest, *version)
			roots[t.GOARCH] = dest
			continue
		}
		if err := build(b, t, *out, *permSeed, os.Stdout); err != nil {
			log.Fatal(err)
		}
	}
	if *feed != "" {
		if err := publish(*repo, *feed, *version, roots); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("signed feed for release %s in %s (keys in %s)\n", *version, *feed, filepath.Join(*repo, "keys"))
	}
}

// publish signs the roots into a feed with the keys in repo/keys.
func publish(repo, feed, version string, roots map[string]string) error {
	release, err := strconv.Atoi(version)
	if err != nil || release <= 0 {
		return fmt.Errorf("release: -version %q must be a positive release number (make release RELEASE=N)", version)
	}
	keys, err := update.LoadOrCreateKeys(filepath.Join(repo, "keys"))
	if err != nil {
		return err
	}
	return update.Publish(feed, keys, update.Release{
		Custom: update.Custom{Release: release, Version: version},
		Files:  roots,
	})
}

func build(b *image.Builder, t image.Target, out, permSeed string, w io.Writer) error {
	img := filepath.Join(out, "hearth-"+t.Name+".img")
	code, err := b.Image(t, img, permSeed)
	if err != nil {
		return err
	}
	if b.Publish {
		fmt.Fprintf(w, "\n%s  (%s, version %s)\n\nFor publication: no setup code inside. Each box makes its own on its first\nstart and writes it to %s on the card and to its console.\n", img, t.GOARCH, b.Version, image.SetupCodeFile)
		return nil
	}
	qr, err := image.SetupQR(code)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s  (%s, version %s)\n\nSetup code: %s\n%s\n%s", img, t.GOARCH, b.Version, code, image.SetupURL(code), qr)
	return nil
}
